from django.contrib import admin
from django.urls import include, path

from backups import views as backup_views
from drportal import views as portal_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ping/<str:token>", backup_views.ping, name="ping"),
    path("status/", include("incidents.urls")),  # incidents: the public status page
    path("health", portal_views.health, name="health"),
    path("health/live", portal_views.live, name="health_live"),
]
