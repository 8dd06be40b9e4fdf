from django.contrib import admin
from django.urls import path

from backups import views as backup_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("ping/<str:token>", backup_views.ping, name="ping"),
]
