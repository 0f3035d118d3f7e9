"""Pointing this process's Celery app at a broker (or back to eager) in the middle of a test."""


def use_broker(eager, broker_url):
    """Switch the Celery app to ``broker_url`` (``eager``: run tasks in-process); returns the previous state."""
    import kombu.pools
    from celery import current_app as app

    conf = app.conf
    previous = (conf.task_always_eager, conf.broker_url)
    conf.task_always_eager, conf.broker_url = eager, broker_url
    kombu.pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    return previous
