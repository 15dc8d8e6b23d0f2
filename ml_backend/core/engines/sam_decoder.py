"""SAM's mask decoder for one image and one prompt set, rearranged to do less work.

Segment-anything's ``MaskDecoder`` is written for batches: it projects all 4096
image tokens to keys, values and queries in every attention, transposes them
into heads and back, and upscales the embedding into 32 channels at 256x256
before it knows which of its four masks will be kept. For one prompt set the
same numbers come out of fewer operations:

* Attention between the image and the handful of prompt tokens is linear in the
  image tokens once the tokens' side is known, so each head's projection is
  folded into a small matrix (256 x heads*tokens) built per call; the image
  tokens meet it in one product and are never split into heads.
* Adding a bias to every key of a softmax row does not change it: the keys'
  bias is dropped where it would only shift a row.
* The two 2x2 stride-2 transposed convolutions do not overlap, so each is a
  product with a reordered weight; the mask token's hypernetwork vector is
  applied per pixel before the pixels are put back in image order, for the one
  mask that is kept.

The result equals ``MaskDecoder`` up to float rounding (tests compare both on
random and trained weights). Only the module's weights are read.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FastMaskDecoder:
    """Decodes one prompt set against one image embedding with a SAM ``MaskDecoder``'s weights."""

    def __init__(self, mask_decoder: nn.Module, image_pe: Tensor) -> None:
        self.decoder = mask_decoder
        transformer = mask_decoder.transformer
        self.layers = list(transformer.layers)
        self.final_attention = transformer.final_attn_token_to_image
        self.final_norm = transformer.norm_final_attn
        # The positional encoding is fixed by the weights: flattened to tokens once.
        self.image_pe_tokens = image_pe[0].detach().flatten(1).t().contiguous()
        upscaling = mask_decoder.output_upscaling
        first_conv, self.upscale_norm, self.first_activation, second_conv, self.second_activation = upscaling
        self.first_weight, self.first_bias, self.first_channels = _as_pixel_product(first_conv)
        self.second_weight, self.second_bias, self.second_channels = _as_pixel_product(second_conv)
        self.output_tokens = torch.cat([mask_decoder.iou_token.weight, mask_decoder.mask_tokens.weight]).detach()

    def __call__(
        self,
        image_embedding: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        multimask_output: bool,
    ) -> tuple[Tensor, Tensor]:
        """Returns the kept mask's 1x1xHxW low-resolution logits and its 1x1 score.

        ``image_embedding`` and ``dense_prompt_embeddings`` are 1xCxhxw; the kept
        mask is the best-scoring of the three candidates with ``multimask_output``,
        else the single-mask output, as ``SamPredictor`` would keep.
        """
        _, channels, height, width = image_embedding.shape
        prompt_tokens = torch.cat([self.output_tokens, sparse_prompt_embeddings[0]], dim=0)
        image_tokens = (image_embedding[0] + dense_prompt_embeddings[0]).flatten(1).t().contiguous()
        tokens, image_tokens = self._transformer(prompt_tokens, image_tokens)

        decoder = self.decoder
        scores = decoder.iou_prediction_head(tokens[0:1])[0]
        candidates = range(1, decoder.num_mask_tokens) if multimask_output else range(0, 1)
        best = max(candidates, key=lambda index: float(scores[index]))
        hypernetwork = decoder.output_hypernetworks_mlps[best](tokens[1 + best : 2 + best])[0]
        logits = self._upscaled_mask(image_tokens, hypernetwork, height, width)
        return logits[None, None], scores[best].reshape(1, 1)

    # -- transformer ----------------------------------------------------------
    def _transformer(self, prompt_tokens: Tensor, image_tokens: Tensor) -> tuple[Tensor, Tensor]:
        queries, keys = prompt_tokens, image_tokens
        image_pe = self.image_pe_tokens
        for layer in self.layers:
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries[None], k=queries[None], v=queries[None])[0]
            else:
                with_pe = (queries + prompt_tokens)[None]
                queries = queries + layer.self_attn(q=with_pe, k=with_pe, v=queries[None])[0]
            queries = layer.norm1(queries)
            keys_with_pe = keys + image_pe
            queries = layer.norm2(
                queries + _tokens_to_image(layer.cross_attn_token_to_image, queries + prompt_tokens, keys_with_pe, keys)
            )
            queries = layer.norm3(queries + layer.mlp(queries))
            keys = layer.norm4(
                keys + _image_to_tokens(layer.cross_attn_image_to_token, keys_with_pe, queries + prompt_tokens, queries)
            )
        attended = _tokens_to_image(self.final_attention, queries + prompt_tokens, keys + image_pe, keys)
        return self.final_norm(queries + attended), keys

    # -- upscaling --------------------------------------------------------------
    def _upscaled_mask(self, image_tokens: Tensor, hypernetwork: Tensor, height: int, width: int) -> Tensor:
        # Rows of ``upscaled`` are (i, j, di, dj): pixel (2i+di, 2j+dj) of the first upscale.
        upscaled = torch.addmm(self.first_bias, image_tokens, self.first_weight)
        upscaled = upscaled.view(-1, self.first_channels)
        upscaled = self.first_activation(
            F.layer_norm(upscaled, (self.first_channels,), self.upscale_norm.weight, self.upscale_norm.bias, self.upscale_norm.eps)
        )
        # Rows (i, j, di, dj, di2, dj2): pixel (4i+2di+di2, 4j+2dj+dj2) of the second upscale.
        features = self.second_activation(torch.addmm(self.second_bias, upscaled, self.second_weight))
        mask = features.view(-1, self.second_channels) @ hypernetwork
        mask = mask.view(height, width, 2, 2, 2, 2).permute(0, 2, 4, 1, 3, 5)
        return mask.reshape(4 * height, 4 * width)


def _as_pixel_product(convolution: nn.ConvTranspose2d) -> tuple[Tensor, Tensor, int]:
    """A non-overlapping 2x2 stride-2 transposed convolution as (weight, bias) of a per-pixel product.

    The product's columns are ordered (di, dj, out channel).
    """
    if tuple(convolution.kernel_size) != (2, 2) or tuple(convolution.stride) != (2, 2):
        raise ValueError("output upscaling: expected 2x2 stride-2 transposed convolutions")
    in_channels, out_channels = convolution.weight.shape[:2]
    weight = convolution.weight.detach().permute(0, 2, 3, 1).reshape(in_channels, 4 * out_channels).contiguous()
    bias = convolution.bias.detach().repeat(4).contiguous()
    return weight, bias, out_channels


def _head_shape(attention: nn.Module) -> tuple[int, int]:
    heads = attention.num_heads
    return heads, attention.internal_dim // heads


def _tokens_to_image(attention: nn.Module, queries: Tensor, image_keys: Tensor, image_values: Tensor) -> Tensor:
    """``attention(q=queries, k=image_keys, v=image_values)`` for a few query tokens against the image."""
    heads, head_dim = _head_shape(attention)
    token_count = queries.shape[0]
    projected = attention.q_proj(queries) / math.sqrt(head_dim)  # tokens x internal
    key_weight = attention.k_proj.weight.view(heads, head_dim, -1)  # heads x d x C
    # Per head: q_h . (W_k,h x + b_k,h); the bias term is the same for every image token.
    folded = torch.einsum("thd,hdc->htc", projected.view(token_count, heads, head_dim), key_weight)
    logits = folded.reshape(heads * token_count, -1) @ image_keys.t()  # (heads*tokens) x N
    weights = torch.softmax(logits, dim=1)
    # Rows of a softmax sum to one, so the values' bias passes through unchanged.
    pooled = (weights @ image_values).view(heads, token_count, -1)  # heads x tokens x C
    value_weight = attention.v_proj.weight.view(heads, head_dim, -1)
    per_head = torch.einsum("htc,hdc->thd", pooled, value_weight).reshape(token_count, heads * head_dim)
    return attention.out_proj(per_head + attention.v_proj.bias)


def _image_to_tokens(attention: nn.Module, image_queries: Tensor, token_keys: Tensor, token_values: Tensor) -> Tensor:
    """``attention(q=image_queries, k=token_keys, v=token_values)``: every image token against a few tokens."""
    heads, head_dim = _head_shape(attention)
    token_count = token_keys.shape[0]
    keys = attention.k_proj(token_keys).view(token_count, heads, head_dim) / math.sqrt(head_dim)
    query_weight = attention.q_proj.weight.view(heads, head_dim, -1)  # heads x d x C
    folded = torch.einsum("thd,hdc->cht", keys, query_weight).reshape(query_weight.shape[2], heads * token_count)
    folded_bias = torch.einsum("thd,hd->ht", keys, attention.q_proj.bias.view(heads, head_dim)).reshape(-1)
    # Laid out (heads*tokens) x N: a softmax over 7-odd tokens is several times
    # faster along the long axis than along a short last one.
    logits = torch.addmm(folded_bias[:, None], folded.t(), image_queries.t())
    weights = torch.softmax(logits.view(heads, token_count, -1), dim=1).view(heads * token_count, -1)
    values = attention.v_proj(token_values).view(token_count, heads, head_dim)
    # Block-diagonal values (head h's tokens feed head h's channels), then the output projection.
    out_weight = attention.out_proj.weight.view(-1, heads, head_dim)  # C x heads x d
    mixed = torch.einsum("thd,chd->htc", values, out_weight).reshape(heads * token_count, -1)
    return torch.addmm(attention.out_proj.bias, weights.t(), mixed)
