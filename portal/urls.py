from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from backups import views as backup_views
from portal import views as portal_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ping/<str:token>", backup_views.ping, name="ping"),
    path("status/", include("incidents.urls")),  # incidents: the public status page
    path("health", portal_views.health, name="health"),
    path("health/live", portal_views.live, name="health_live"),
    # Browsers ask for /favicon.ico whatever the page says; the portal's own icon, not a 404 on every page.
    path("favicon.ico", RedirectView.as_view(url=static("drportal/favicon.ico"), permanent=True)),
    # The bare address leads to the portal rather than a 404.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]
