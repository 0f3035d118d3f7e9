from django.urls import path

from . import views

app_name = "recommender"
urlpatterns = [
    path("search/", views.search, name="search"),
]
