"""The official Alibaba Cloud SDK from PyPI (``alibabacloud-aigen20240111``), unchanged,
against a real ``scribble-seg serve``: default (V3) and V2 signatures, every documented
parameter combination, the ``*_advance`` calls with local files, and errors as the
SDK's ``ClientException`` with our codes.

The SDK is a test dependency (pyproject's ``test`` extra, installed by ``make test``).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from alibabacloud_aigen20240111 import models as aigen_models
from alibabacloud_aigen20240111.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions
from PIL import Image

from ml_backend.tools.evaluation.datasets import split_scribbles
from ml_backend.tools.evaluation.metrics import iou
from ml_backend.tools.loopback_host import LoopbackHost
from tests.support.backend_server import BackendServer
from tests.support.data import shared_dataset

API_KEY = "sdk-test-key-0123456789"
IMAGE_NAME = "teddy"


class StandaloneBackend(BackendServer):
    """``scribble-seg serve`` without Label Studio, with the settings given."""

    def __init__(self, **settings: str) -> None:
        super().__init__(label_studio_url="", label_studio_token="")
        self.settings = settings

    def environment(self) -> dict[str, str]:
        environment = super().environment()
        environment.pop("LABEL_STUDIO_URL")
        environment.pop("LABEL_STUDIO_API_KEY")
        environment.update(self.settings)
        return environment


@dataclass(frozen=True)
class Files:
    """The GrabCut image and its set-2 strokes, on disk and served over HTTP."""

    truth: np.ndarray
    paths: dict[str, Path]
    urls: dict[str, str]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    folder = tmp_path_factory.mktemp("sdk-files")
    grabcut = shared_dataset("GrabCut")
    image = np.asarray(Image.open(next((grabcut / "images").glob(f"{IMAGE_NAME}.*"))).convert("RGB"))
    truth = np.asarray(Image.open(grabcut / "masks" / f"{IMAGE_NAME}.png").convert("L")) > 127
    scribbles = np.asarray(Image.open(grabcut / "scribbles_set2" / f"{IMAGE_NAME}.png").convert("L"))
    positive, negative = split_scribbles(scribbles)
    contents = {
        "image.png": png(image),
        "positive.png": png(positive.astype(np.uint8) * 255),
        "negative.png": png(negative.astype(np.uint8) * 255),
        "empty-mask.png": png(np.zeros(truth.shape, np.uint8)),
    }
    paths = {}
    for name, content in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)

    with LoopbackHost() as host:
        urls = {name: host.add(name, content) for name, content in contents.items()}
        yield Files(truth, paths, urls)


@pytest.fixture(scope="module")
def backend() -> Iterator[StandaloneBackend]:
    # 127.0.0.1: the SDK uploads to '{Bucket}.{Endpoint}', so the server is addressed
    # by a dotted host. ALLOWED_FETCH_HOSTS lets it fetch the test's image server there.
    server = StandaloneBackend(API_KEYS=API_KEY, ALLOWED_FETCH_HOSTS="127.0.0.1").start()
    try:
        yield server
    finally:
        server.stop()


def sdk_client(backend: StandaloneBackend, signature_algorithm: str | None = None, key: str = API_KEY) -> Client:
    """The README's snippet: the official client pointed at this server."""
    server = backend.url.removeprefix("http://")
    config = Config(
        access_key_id=key,
        access_key_secret="not-checked",
        endpoint=server,
        protocol="http",
        region_id="cn-shanghai",
        open_platform_endpoint=server,
    )
    if signature_algorithm is not None:
        config.signature_algorithm = signature_algorithm
    client = Client(config)
    # tea-openapi 0.3-0.4.6 never copies Config.open_platform_endpoint into the client.
    client._open_platform_endpoint = server
    return client


def url_request(files: Files, **options: str) -> aigen_models.InteractiveScribbleSegmentationRequest:
    """The image and the strokes by URL, with ``options`` (return_form=..., mask_image_url=...)."""
    return aigen_models.InteractiveScribbleSegmentationRequest(
        image_url=files.urls["image.png"],
        pos_scribble_image_url=files.urls["positive.png"],
        neg_scribble_image_url=files.urls["negative.png"],
        **options,
    )


def result_of(response: aigen_models.InteractiveScribbleSegmentationResponse) -> Image.Image:
    answer = httpx.get(response.body.data.result_url, timeout=30)
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(answer.content))
    image.load()
    return image


def object_of(image: Image.Image, return_form: str) -> np.ndarray:
    pixels = np.asarray(image)
    if return_form == "only_alpha":
        return pixels > 127
    if return_form == "rgb_alpha":
        return pixels[:, :, 3] > 127
    return ~(pixels >= 245).all(axis=2)  # white_background: the object is what is not white


def test_the_quirk_the_readme_works_around_is_still_there(backend: StandaloneBackend) -> None:
    # If a later tea-openapi copies open_platform_endpoint itself, the README's extra line is moot.
    client = Client(Config(access_key_id="k", access_key_secret="s", endpoint="h.x", open_platform_endpoint="h.x"))
    assert client._open_platform_endpoint is None


def test_the_default_client_v3_segments_with_urls(backend: StandaloneBackend, files: Files) -> None:
    request = url_request(files, return_form="only_alpha")
    response = sdk_client(backend).interactive_scribble_segmentation(request)
    assert response.status_code == 200
    assert response.body.request_id
    score = iou(object_of(result_of(response), "only_alpha"), files.truth)
    print(f"SDK default (V3) client, {IMAGE_NAME}, set-2 strokes: IoU {score:.3f}")
    assert score >= 0.85


def test_every_documented_parameter_combination(backend: StandaloneBackend, files: Files) -> None:
    client = sdk_client(backend)
    for return_form, return_format, feathering, postprocess in itertools.product(
        ("rgb_alpha", "only_alpha", "white_background"), ("PNG", "JPG"), ("true", "false"), ("maskrefine", "edgerefine")
    ):
        request = url_request(
            files,
            return_form=return_form,
            return_format=return_format,
            edge_feathering=feathering,
            postprocess_option=postprocess,
        )
        image = result_of(client.interactive_scribble_segmentation(request))
        combination = (return_form, return_format, feathering, postprocess)
        # rgb_alpha is a four-channel PNG whatever ReturnFormat says (JPG cannot carry alpha).
        expected_format = "PNG" if return_form == "rgb_alpha" else return_format.replace("JPG", "JPEG")
        assert image.format == expected_format, combination
        modes = {"rgb_alpha": "RGBA", "only_alpha": "L", "white_background": "RGB"}
        assert image.mode == modes[return_form], combination
        assert iou(object_of(image, return_form), files.truth) >= 0.85, combination


def test_the_v2_signature_works_too(backend: StandaloneBackend, files: Files) -> None:
    request = url_request(files, return_form="only_alpha")
    response = sdk_client(backend, signature_algorithm="v2").interactive_scribble_segmentation(request)
    assert iou(object_of(result_of(response), "only_alpha"), files.truth) >= 0.85


@pytest.mark.parametrize("signature_algorithm", [None, "v2"])
def test_advance_uploads_local_files(backend: StandaloneBackend, files: Files, signature_algorithm: str | None) -> None:
    with (
        files.paths["image.png"].open("rb") as image,
        files.paths["positive.png"].open("rb") as positive,
        files.paths["negative.png"].open("rb") as negative,
    ):
        request = aigen_models.InteractiveScribbleSegmentationAdvanceRequest(
            image_url_object=image,
            pos_scribble_image_url_object=positive,
            neg_scribble_image_url_object=negative,
            return_form="only_alpha",
        )
        response = sdk_client(backend, signature_algorithm).interactive_scribble_segmentation_advance(
            request, RuntimeOptions()
        )
    score = iou(object_of(result_of(response), "only_alpha"), files.truth)
    print(f"SDK advance ({signature_algorithm or 'V3'}) with local files, {IMAGE_NAME}, set-2 strokes: IoU {score:.3f}")
    assert score >= 0.85


def test_an_empty_current_mask_is_no_mask(backend: StandaloneBackend, files: Files) -> None:
    client = sdk_client(backend)
    masks = []
    for mask_url in (None, files.urls["empty-mask.png"]):
        request = url_request(files, mask_image_url=mask_url, return_form="only_alpha")
        masks.append(np.asarray(result_of(client.interactive_scribble_segmentation(request))))
    assert np.array_equal(masks[0], masks[1])


def test_errors_are_client_exceptions_with_our_codes(backend: StandaloneBackend, files: Files) -> None:
    client = sdk_client(backend)
    with pytest.raises(ClientException) as raised:
        client.interactive_scribble_segmentation(
            aigen_models.InteractiveScribbleSegmentationRequest(image_url=files.urls["image.png"])
        )
    assert raised.value.code == "InvalidParameter.Scribble"
    assert raised.value.status_code == 400
    assert {"RequestId", "HostId", "Code", "Message", "Recommend"} <= set(raised.value.data)
    assert "PosScribbleImageUrl" in raised.value.data["Message"]

    with pytest.raises(ClientException) as raised:
        sdk_client(backend, key="not-a-configured-key").interactive_scribble_segmentation(
            aigen_models.InteractiveScribbleSegmentationRequest(image_url=files.urls["image.png"])
        )
    assert (raised.value.code, raised.value.status_code) == ("InvalidApiKey", 401)


def test_a_wrong_action_is_not_found(backend: StandaloneBackend) -> None:
    for headers, params in (({"x-acs-action": "DescribeRegions"}, {}), ({}, {"Action": "DescribeRegions"})):
        answer = httpx.get(backend.url + "/", headers={"X-API-Key": API_KEY, **headers}, params=params)
        assert answer.status_code == 404
        body = answer.json()
        assert body["Code"] == "InvalidAction.NotFound"
        assert "DescribeRegions" in body["Message"]
        assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}


def test_uploads_are_checked_and_never_fetched(backend: StandaloneBackend, files: Files) -> None:
    headers = {"X-API-Key": API_KEY}
    grant = httpx.get(backend.url + "/", params={"Action": "AuthorizeFileUpload"}, headers=headers).json()
    host = backend.url.removeprefix("http://")
    assert f"{grant['Bucket']}.{grant['Endpoint']}" == host
    form = {"OSSAccessKeyId": grant["AccessKeyId"], "policy": grant["EncodedPolicy"], "key": grant["ObjectKey"],
            "success_action_status": "201"}
    content = files.paths["image.png"].read_bytes()

    # A signature that is not the grant's is refused, in OSS's XML.
    forged = httpx.post(backend.url + "/", data={**form, "Signature": "x" + grant["Signature"][1:]},
                        files={"file": ("f", content)})
    assert forged.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in forged.text

    stored = httpx.post(
        backend.url + "/", data={**form, "Signature": grant["Signature"]}, files={"file": ("f", content)}
    )
    assert stored.status_code == 201, stored.text

    def segment(image_url: str) -> httpx.Response:
        return httpx.get(backend.url + "/", headers=headers, params={
            "Action": "InteractiveScribbleSegmentation", "ImageUrl": image_url,
            "PosScribbleImageUrl": files.urls["positive.png"], "ReturnForm": "only_alpha"})

    for url in (f"http://{host}/{grant['ObjectKey']}", f"oss://{grant['Bucket']}/{grant['ObjectKey']}"):
        assert segment(url).status_code == 200, url
    # An upload that is not there is an error, not a fetch from elsewhere.
    missing = segment(f"oss://{grant['Bucket']}/uploads/{'0' * 32}.bin")
    assert (missing.status_code, missing.json()["Code"]) == (400, "InvalidImage.Download")
    assert "unknown or has expired" in missing.json()["Message"]

    # The SDK uploads to '{Bucket}.{Endpoint}': a host without a dot cannot be split so.
    undotted = httpx.get(backend.url + "/", params={"Action": "AuthorizeFileUpload"},
                         headers={**headers, "Host": f"localhost:{backend.port}"})
    assert (undotted.status_code, undotted.json()["Code"]) == (400, "InvalidParameter.Endpoint")

    # A multipart POST that is no upload still needs the API key.
    keyless = httpx.post(backend.url + "/", data={"Action": "InteractiveScribbleSegmentation"},
                         files={"Image": ("i.png", content)})
    assert (keyless.status_code, keyless.json()["Code"]) == (401, "InvalidApiKey")
