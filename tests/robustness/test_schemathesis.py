"""Schemathesis against the OpenAPI schema (/api/schema/), through the WSGI application, as staff (token): every
operation, valid and invalid generated inputs, a bounded number of examples each; the required check is that
no answer is a server error."""
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

EXAMPLES = 20  # per operation and generation mode


@pytest.fixture
def fuzz_target(transactional_db, fake_pipeline):
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.wsgi import get_wsgi_application
    from rest_framework.authtoken.models import Token

    from catalog.models import Product, ProductImage
    from robust_inputs import jpeg

    staff = get_user_model().objects.create_user("fuzz-staff", password="pw-fuzz-1", is_staff=True)
    token = Token.objects.create(user=staff).key
    # A few real rows so that {id} sometimes points at something.
    for number in range(1, 4):
        product = Product.objects.create(sku=f"FZ-{number}", name=f"Fuzz {number}", gender="Men",
                                         sub_category="Topwear", price="10")
        image = ProductImage(product=product, is_primary=True)
        image.file = ContentFile(jpeg(seed=number), name="f.jpg")
        image.save()
    ids = {"product": list(Product.objects.values_list("pk", flat=True)),
           "image": list(ProductImage.objects.values_list("pk", flat=True))}
    return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application()), token, ids


@pytest.mark.slow
def test_no_operation_answers_with_a_server_error(fuzz_target):
    schema, token, ids = fuzz_target
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    problems, calls = [], []

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            real_ids = ids["image"] if operation.path.startswith("/api/images/") else ids["product"]

            @given(case=operation.as_strategy(generation_mode=mode), real_id=st.one_of(st.none(), st.sampled_from(real_ids)))
            @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                                 phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                                 report_multiple_bugs=False)
            def run(case, real_id):
                if real_id is not None and "id" in (case.path_parameters or {}):
                    case.path_parameters["id"] = real_id  # half the time: an object that exists
                response = case.call(headers={"Authorization": f"Token {token}"})
                calls.append(response.status_code)
                case.validate_response(response, checks=[not_a_server_error])

            try:
                run()
            except Exception as error:  # collect every operation's failure, then report them all
                problems.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {error}"[:3000])
    assert not problems, "\n\n".join(problems)
    assert len(calls) >= len(operations) * 5 and all(code < 500 for code in calls)
    from collections import Counter
    print("schemathesis status codes:", sorted(Counter(calls).items()))
    assert {200, 201, 204} & set(calls) and {400, 404} & set(calls)  # both accepted and refused inputs were tried
