"""Pointing this process's Celery app at a broker (or back to eager) in the middle of a test."""


def use_broker(eager, broker_url, transport_options=None):
    """Switch the Celery app to ``broker_url`` (``eager``: run tasks in-process) and, if given, its broker
    transport options; returns the previous state (pass it back as ``use_broker(*previous)``)."""
    import kombu.pools
    from celery import current_app as app

    conf = app.conf
    previous = (conf.task_always_eager, conf.broker_url, dict(conf.broker_transport_options or {}))
    conf.task_always_eager, conf.broker_url = eager, broker_url
    if transport_options is not None:
        conf.broker_transport_options = transport_options
    kombu.pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    return previous
