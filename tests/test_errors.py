"""The one error hierarchy: every exception the package defines derives from its base,
API errors carry an ``ErrorCode`` (never a string, never a status), HTTP statuses
live in ``server/http_errors`` alone, and no product code reads meaning out of a message."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import ml_backend
from ml_backend.core.engine import EngineUnavailable
from ml_backend.core.prompts import PromptError
from ml_backend.errors import (
    ApiError,
    ClientError,
    DownloadError,
    ErrorCode,
    InputError,
    Overloaded,
    ScribbleSegError,
    ServerError,
    Unavailable,
    invalid_parameter,
)
from ml_backend.labelstudio.media_urls import MediaUrlError
from ml_backend.labelstudio.touches import rasterize_brush_value
from ml_backend.server.http_errors import STATUS_OF_CODE, http_status, retry_headers
from ml_backend.server.labelstudio_drafts import DraftsUnavailable
from ml_backend.settings import SettingsError
from ml_backend.tools.evaluation.datasets import DatasetError
from ml_backend.tools.evaluation.runner import NothingToStroke
from ml_backend.weights import CheckpointDownloadError, ChecksumMismatch

PACKAGE_ROOT = Path(ml_backend.__file__).parent
SOURCES = sorted(PACKAGE_ROOT.rglob("*.py"))
# The statuses clients see: the API's wire contract, written out here rather than read
# from the mapping under test.
WIRE_STATUSES = {
    "InvalidParameter": 400,
    "InvalidParameter.Endpoint": 400,
    "InvalidParameter.Scribble": 400,
    "InvalidArgument": 400,
    "InvalidImage.Content": 400,
    "InvalidImage.Resolution": 400,
    "InvalidImage.Url": 400,
    "InvalidImage.Download": 400,
    "InvalidPolicyDocument": 400,
    "InvalidApiKey": 401,
    "Unauthorized": 401,
    "AccessDenied": 403,
    "SignatureDoesNotMatch": 403,
    "NoSuchKey": 404,
    "InvalidAction.NotFound": 404,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "InvalidFile.Size": 413,
    "InvalidImage.Format": 415,
    "UnsupportedMediaType": 415,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}


def _package_exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(ml_backend.__path__, "ml_backend."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_in_the_package_derives_from_the_base() -> None:
    classes = _package_exception_classes()
    named = {
        PromptError,
        SettingsError,
        EngineUnavailable,
        DatasetError,
        NothingToStroke,
        ChecksumMismatch,
        CheckpointDownloadError,
        MediaUrlError,
        DraftsUnavailable,
    }
    assert named <= set(classes.values()), "the walk must reach every module that defines an error"
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, ScribbleSegError))
    assert outside == [], f"exception classes outside the hierarchy: {outside}"


def test_client_errors_and_server_errors_stand_apart() -> None:
    for server_side in (SettingsError, EngineUnavailable, ChecksumMismatch, CheckpointDownloadError):
        assert issubclass(server_side, ServerError) and not issubclass(server_side, ApiError), server_side
    for server_side in (DatasetError, NothingToStroke, DraftsUnavailable):
        assert issubclass(server_side, ServerError), server_side
    for input_fault in (PromptError, MediaUrlError):
        assert issubclass(input_fault, InputError) and not issubclass(input_fault, ApiError), input_fault
    assert issubclass(DownloadError, ClientError)
    # A full server is not the caller's fault, though it is answered with an API code.
    assert issubclass(Overloaded, Unavailable) and issubclass(Unavailable, ApiError)
    assert not issubclass(Unavailable, ClientError)
    assert not issubclass(ClientError, ServerError) and not issubclass(ServerError, ApiError)
    # The built-in bases they had before stay, for callers that catch those.
    assert issubclass(SettingsError, ValueError) and issubclass(EngineUnavailable, RuntimeError)
    assert issubclass(PromptError, ValueError) and issubclass(ChecksumMismatch, RuntimeError)


def test_an_api_error_refuses_a_string_code() -> None:
    with pytest.raises(TypeError, match="ErrorCode"):
        ClientError("InvalidParameter", "ImageUrl: is required")  # type: ignore[arg-type]
    error = ClientError(ErrorCode.INVALID_IMAGE_URL, "ImageUrl: not a URL", field="ImageUrl")
    assert error.code is ErrorCode.INVALID_IMAGE_URL and error.code == "InvalidImage.Url"
    assert not hasattr(error, "status"), "statuses belong to server/http_errors, not to the error"


def _calls_to(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id in names)
            or (isinstance(node.func, ast.Attribute) and node.func.attr in names)
        )
    ]


def _parameters_typed_error_code(tree: ast.AST) -> set[str]:
    typed = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for argument in node.args.args + node.args.kwonlyargs:
                if isinstance(argument.annotation, ast.Name) and argument.annotation.id == "ErrorCode":
                    typed.add(argument.arg)
    return typed


def test_every_api_error_is_built_with_an_error_code_member_and_no_status() -> None:
    checked, wrong = 0, []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typed_parameters = _parameters_typed_error_code(tree)
        for call in _calls_to(tree, {"ClientError", "ApiError"}):
            where = f"{path.relative_to(PACKAGE_ROOT)}:{call.lineno}"
            code = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "code"), None)
            is_member = (
                isinstance(code, ast.Attribute) and isinstance(code.value, ast.Name) and code.value.id == "ErrorCode"
            )
            is_typed_parameter = isinstance(code, ast.Name) and code.id in typed_parameters
            if code is None or not (is_member or is_typed_parameter):
                wrong.append(f"{where}: code is not an ErrorCode member")
            if is_member and code.attr not in ErrorCode.__members__:
                wrong.append(f"{where}: ErrorCode.{code.attr} does not exist")
            if any(keyword.arg == "status" for keyword in call.keywords):
                wrong.append(f"{where}: passes an HTTP status")
            checked += 1
    assert checked >= 30, f"only {checked} ClientError(...) calls found: the scan is broken"
    assert wrong == []


def test_http_statuses_are_mapped_only_in_the_server_package() -> None:
    importers = []
    for path in SOURCES:
        relative = path.relative_to(PACKAGE_ROOT)
        if relative.parts[0] == "server":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and "http_errors" in (node.module or ""):
                importers.append(f"{relative}:{node.lineno}")
            if isinstance(node, ast.Import) and any("http_errors" in alias.name for alias in node.names):
                importers.append(f"{relative}:{node.lineno}")
    assert importers == []
    assert not any(hasattr(cls, "status") for cls in _package_exception_classes().values())


def test_every_code_has_the_status_clients_have_always_seen() -> None:
    # HTTPError names the framework's other refusals and takes the framework's status.
    assert {code.value for code in ErrorCode} - {"HTTPError"} == set(WIRE_STATUSES)
    assert {code.value: status for code, status in STATUS_OF_CODE.items()} == WIRE_STATUSES
    assert http_status(invalid_parameter("ImageUrl", "is required")) == 400
    assert http_status(DownloadError("ImageUrl", "ImageUrl: timed out")) == 400


def test_only_errors_that_say_when_to_retry_send_retry_after() -> None:
    full = Overloaded("FETCH_CONCURRENCY", "fetch slots are full", retry_after_seconds=3)
    assert (full.code, http_status(full), retry_headers(full)) == ("ServiceUnavailable", 503, {"Retry-After": "3"})
    store_down = Unavailable("the result store cannot be reached")
    assert (http_status(store_down), retry_headers(store_down)) == (503, {})
    assert retry_headers(invalid_parameter("ImageUrl", "is required")) == {}


def _reads_a_message(node: ast.AST) -> bool:
    def is_message(value: ast.AST) -> bool:
        return isinstance(value, ast.Attribute) and value.attr == "message"

    if isinstance(node, ast.Subscript) and is_message(node.value):
        return True  # error.message[len(field) + 2:]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_message(node.func.value):
        return True  # error.message.split(": "), .startswith(...), .partition(...)
    if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
        return any(is_message(side) for side in node.comparators)  # "answered HTTP" in error.message
    return False


def test_no_product_code_reads_meaning_out_of_a_message() -> None:
    readers = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        readers += [
            f"{path.relative_to(PACKAGE_ROOT)}:{node.lineno}" for node in ast.walk(tree) if _reads_a_message(node)
        ]
    assert readers == []
    assert _reads_a_message(ast.parse('"answered HTTP" in error.message', mode="eval").body)
    assert _reads_a_message(ast.parse('error.message.split(": ")', mode="eval").body)


def test_a_field_prefix_is_kept_apart_from_the_reason() -> None:
    error = invalid_parameter("rle", "declares no values")
    assert (error.field, error.reason, error.message) == ("rle", "declares no values", "rle: declares no values")
    # A region's RLE error is renamed inside the region from the reason, not by cutting the message.
    with pytest.raises(ClientError) as refused:
        rasterize_brush_value({"rle": [0, 0, 0, 0, 0, 0, 0, 0]}, 4, 4, "result[2].value")
    assert refused.value.field == "result[2].value.rle"
    assert refused.value.message == f"result[2].value.rle: {refused.value.reason}"
    assert "rle: " not in refused.value.reason
