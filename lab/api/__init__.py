"""The App Mesh REST API (2019-01-25) served by the lab daemon."""
