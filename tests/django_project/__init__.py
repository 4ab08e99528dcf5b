"""A minimal Django project for the tests of faktory.contrib.django."""
