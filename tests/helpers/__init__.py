"""Code the tests share (not fixtures: those are in tests/conftest.py).

pytest puts tests/ and lib/ on sys.path (pyproject.toml,
[tool.pytest.ini_options] pythonpath), so a test imports
``from helpers.cni import call_plugin`` with no sys.path edit of its own."""
