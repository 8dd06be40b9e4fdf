from django.apps import AppConfig

# The backups app's beat entries: (name, task, cron, description); created at migrate time (drportal.schedules).
HOUSEKEEPING = (
    (
        "rpo: evaluate objectives",
        "backups.tasks.evaluate_objectives",
        "* * * * *",
        "Recompute every RPO objective's state; alert on changes and remind while breached.",
    ),
    (
        "jobs: reap dead workers' jobs",
        "backups.tasks.reap_stale_jobs",
        "*/5 * * * *",
        "Fail backups and restores whose worker stopped reporting; remove what killed runs left in locations.",
    ),
    (
        "jobs: watch queues for workers",
        "backups.tasks.watch_queues",
        "* * * * *",
        "Alert when a queue with targets has no live worker; fail backups that waited too long for one.",
    ),
    (
        "retention: prune expired copies",
        "backups.tasks.prune_expired",
        "30 3 * * *",
        "Delete copies past their location's retention (never a target's last verified copy).",
    ),
    (
        "verify: monthly restore test",
        "backups.tasks.monthly_restore_tests",
        "0 4 1 * *",
        "Restore each target's newest backup into a scratch database and compare row counts.",
    ),
)


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups"

    def ready(self) -> None:
        from drportal.schedules import register_system_schedule

        from . import alerting, plan, receivers  # noqa: F401  plan sections; schedule sync; alerts on its signals

        alerting.register_events()

        for name, task, cron, description in HOUSEKEEPING:
            register_system_schedule(name, task, cron, description)

        from drportal.workers import ENV_NAME_SOURCES

        from .services.queues import env_names_of_targets

        # Workers report which of these env: names they can see (names only) in their heartbeat.
        if env_names_of_targets not in ENV_NAME_SOURCES:
            ENV_NAME_SOURCES.append(env_names_of_targets)
