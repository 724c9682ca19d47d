"""Helpers the test folders share, imported as `testkit` (pytest puts tests/support first on sys.path), so no
installed package named `tests` can shadow them."""
