import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never reach a hub: every checkpoint they load is one they built.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(__file__))


# The files that take longest, started first: with two workers taking whole files, the suite's wall time
# is the longer worker's, and a long file started last would run alone at the end (pyproject's addopts
# keep xdist from re-sorting files by their number of tests).
LONGEST_FIRST = ("test_docs.py", "test_notebooks.py", "test_docs_standalone.py", "test_training_speed.py",
                 "test_generation.py", "test_export.py", "test_export_xla.py", "test_training.py", "test_default_model.py",
                 "test_cli.py", "test_truecase.py", "test_package.py")


def pytest_addoption(parser):
    parser.addoption("--run_large", action="store_true", default=False,
                     help="also run the tests marked large (KerasHub's convention; CI runs them)")


def pytest_collection_modifyitems(config, items):
    """Tests marked `large` (end to end through fresh interpreters, notebooks, the documentation's examples, the
    shipped default model's quality, wheels, several processes) run only with --run_large: the plain
    `python -m pytest` is the developer's loop, and .ci/run runs both tiers. Deselected, not skipped: they
    are a tier, not a condition this machine lacks."""
    if not config.getoption("--run_large"):
        large = [item for item in items if item.get_closest_marker("large")]
        config.hook.pytest_deselected(items=large)
        items[:] = [item for item in items if item not in large]

    def rank(item):
        name = os.path.basename(str(item.fspath))
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside each file is kept
