"""A Django app giving ``python manage.py faktory_worker``: add
``"faktory.contrib.django_app"`` to ``INSTALLED_APPS`` (extra ``django``).

The command is ``faktory worker --django`` with the project's settings: every option of
``faktory worker`` works (``python manage.py faktory_worker -c 10 --metrics 9191``)."""
