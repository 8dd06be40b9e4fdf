from celery import shared_task


@shared_task
def run_probes() -> int:
    from . import probes

    return probes.run_due()
