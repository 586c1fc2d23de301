from tests.server.conftest import model  # noqa: F401  (the shared real model fixture)
