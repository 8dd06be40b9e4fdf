from django.apps import AppConfig


class DRPortalConfig(AppConfig):
    name = "drportal"
    verbose_name = "DR Portal"
