"""``python -m bench.ab``: the product page with one setting at several values, on the database it is pointed at."""
import re

import pytest

from bench import ab

from look_factories import bulk_inventory, random_unit


@pytest.mark.django_db
def test_every_value_measured_on_every_look_page(look, rng, capsys):
    bulk_inventory([{"category": category, "embedding": random_unit(rng)}
                    for category in ("top", "footwear") for _ in range(8)])
    ab.main(["PREPARED_STATEMENTS", "false", "true", "--rounds", "2", "--warmup", "1", "--compare-rows"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("1 look pages × 2 rounds, cache off")
    assert [line.split(":")[0] for line in lines[1:3]] == ["PREPARED_STATEMENTS=false", "PREPARED_STATEMENTS=true"]
    assert all(re.search(r"p50 \d+\.\d\d ms, p95 \d+\.\d\d ms, mean \d+\.\d\d ms$", line) for line in lines[1:3])
    assert lines[3].endswith("(4 filter sets each): 0 of 1")


@pytest.mark.django_db
def test_rows_that_differ_between_values_are_counted(look, rng, settings):
    bulk_inventory([{"category": category, "embedding": random_unit(rng)}
                    for category in ("top", "footwear") for _ in range(8)])
    base = dict(settings.BUY_THE_LOOK)
    assert ab.differing_looks([look["product"]], "K", [6, 6], base) == 0
    assert ab.differing_looks([look["product"]], "K", [6, 4], base) == 1  # k changes what the page shows


@pytest.mark.django_db
def test_a_database_without_looks_is_refused_by_name():
    with pytest.raises(SystemExit, match="no analysed look"):
        ab.main(["PREPARED_STATEMENTS", "false", "true"])


def test_values_are_json():
    with pytest.raises(SystemExit):
        ab.parse_args(["K", "not-json"])
