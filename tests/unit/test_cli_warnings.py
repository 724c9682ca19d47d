"""The CLI hides the libraries' known noise by category and module, and no other warning: driftline's own
DeprecationWarnings are shown."""

from __future__ import annotations

import warnings

import pytest

from driftline.cli.main import LIBRARY_NOISE, filter_warnings


def shown(category: type[Warning], module: str, every_warning: bool = False) -> bool:
    """Whether a warning of `category` reported from `module` reaches the user once the CLI's filters are set, over
    Python's default filters (a library's DeprecationWarning hidden) or over `-W default` (every warning once)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # not pytest's filters
        warnings.simplefilter("default" if every_warning else "ignore", DeprecationWarning)
        filter_warnings()
        warnings.warn_explicit("a message", category, f"{module.replace('.', '/')}.py", 7, module=module)
    return len(caught) == 1


def test_a_deprecation_warning_from_driftline_s_own_code_is_shown():
    assert shown(DeprecationWarning, "driftline.config.root")
    assert shown(DeprecationWarning, "driftline")
    assert not shown(DeprecationWarning, "driftlinex")  # another package's, hidden as Python hides it


@pytest.mark.parametrize(
    "module", ["great_expectations.core.batch_manager", "evidently.legacy.tests.utils", "litestar.params"]
)
def test_each_named_library_noise_is_hidden_even_under_w_default(module):
    assert any(module.startswith(pattern.replace("\\.", ".")) for _, pattern in LIBRARY_NOISE)
    assert not shown(DeprecationWarning, module, every_warning=True)
    assert shown(UserWarning, module, every_warning=True)  # only the category named


def test_other_libraries_warnings_stay_visible():
    assert shown(UserWarning, "sklearn.base")
    assert shown(FutureWarning, "mlflow.models.signature")
    assert shown(DeprecationWarning, "mlflow.models.signature", every_warning=True)
