"""The search's proxy task and proxy networks: scikit-learn's digits and three tiny ConvNets.

The EvoNorm search (Liu et al., "Evolving Normalization-Activation Layers", arXiv 2004.02967)
scores a candidate layer by training several *proxy* architectures with it and requires it to do
well on all of them, so that a layer which only suits one architecture is not selected. The paper
trains ResNet-50, MobileNetV2 and EfficientNet-B0 on CIFAR-10; this module has the same three
families in miniature, sized for a 2-core CPU, and a small image task that needs no download:

- `digits_task`: scikit-learn's `load_digits` (1,797 8x8 images, 10 classes, shipped with the
  package) enlarged to `image_size` and split into training, validation (the search's scores)
  and held-out (the final re-ranking) sets.
- `resnet`: a pre-activation ResNet (ResNet v2).
- `mobilenet`: MobileNetV2's inverted residuals.
- `efficientnet`: EfficientNet's MBConv blocks with squeeze-excitation.

Every builder takes `norm_layer`, a zero-argument callable returning a fresh Keras layer that
acts as a fused normalization + activation on channels-last tensors. It is called wherever the
reference architecture has a BatchNormalization followed by an activation (ReLU, ReLU6 or swish);
`PROXIES` maps each name to its builder:

Example::

    import keras
    from keras_norms.search import proxies

    task = proxies.digits_task()
    norm_act = lambda: keras.Sequential([keras.layers.BatchNormalization(), keras.layers.ReLU()])
    model = proxies.PROXIES["resnet"](norm_act, input_shape=task.input_shape, num_classes=task.num_classes)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(task.x_train, task.y_train, validation_data=(task.x_val, task.y_val), epochs=3)

The three share one layout: a 3x3 stem conv of stride 2 (`STEM_STRIDE`), stages of blocks with
`width, width, 2 * width, ...` channels (`stage_channels`), each stage after the first halving
the resolution (`stage_stride`), and a head of global average pooling and `Dense(num_classes)`
logits. At width 16 they have about 25k (resnet), 11k (mobilenet) and 13k (efficientnet)
parameters, and a training step of batch 64 on 16x16x1 images takes 3 to 6 ms on 2 CPU cores
(JAX, jit-compiled). Every normalized tensor has a multiple of `width` channels, so channel
groups that divide `width` divide them all. Only `keras.layers` and `keras.ops` are used: the
proxies run on the TensorFlow, JAX and PyTorch backends (depthwise convolutions are
`ShiftedDepthwiseConv2D`, which is faster than XLA's on a CPU).
"""

import dataclasses
import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_norms.arguments import check_int, check_number

NormLayerFactory = Callable[[], keras.layers.Layer]

# The stem's stride. The digits are 8x8 images enlarged: a stride-2 stem brings a 16x16 input back
# to 8x8 at no loss of accuracy and makes a training step 1.5 to 2 times faster.
STEM_STRIDE = 2


# --- the task ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ImageTask:
    """An image classification task split three ways.

    Attributes:
        x_train, y_train: Training images (float32, NHWC) and integer labels (int32).
        x_val, y_val: The validation split: the search scores candidates on it.
        x_holdout, y_holdout: The held-out split: the final re-ranking of the best candidates.
        num_classes: Labels are in `[0, num_classes)`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one image, e.g. `(16, 16, 1)`."""
        return tuple(int(size) for size in self.x_train.shape[1:])


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover - scikit-learn is a dev dependency
        raise ImportError(
            "digits_task needs scikit-learn (its `load_digits` images ship with the package): "
            "`pip install scikit-learn`."
        ) from error
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64) / 16.0  # pixel values 0..16
    return images, np.asarray(digits.target, dtype=np.int32)


def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """The `(size_out, size_in)` matrix of 1-D bilinear resizing with half-pixel centers.

    The convention of `keras.ops.image.resize(..., interpolation="bilinear")` when enlarging
    (and of `tf.image.resize`, `jax.image.resize`, `torch.nn.functional.interpolate` with
    `align_corners=False`): output pixel `i` samples the input at `(i + 0.5) * size_in / size_out
    - 0.5`, clamped to the edge pixels. Rows sum to 1.
    """
    check_int("size_in", size_in, 1)
    check_int("size_out", size_out, 1)
    position = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0.0, size_in - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    fraction = position - low
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), low] += 1.0 - fraction
    matrix[np.arange(size_out), high] += fraction
    return matrix


def _check_split_fraction(name: str, value: object) -> float:
    return check_number(name, value, 0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True)


def digits_task(
    image_size: int = 16, seed: int = 0, validation_fraction: float = 0.2, holdout_fraction: float = 0.2
) -> ImageTask:
    """scikit-learn's digits as an `ImageTask` of `image_size x image_size x 1` images.

    The 1,797 8x8 images (pixel values 0..16) are scaled to [0, 1], enlarged to `image_size`
    with bilinear interpolation (half-pixel centers, as `keras.ops.image.resize`) and
    standardized with one mean and one standard deviation over all pixels of the training
    images, so that the training split has mean 0 and standard deviation 1 (an affine map
    commutes with bilinear interpolation: standardizing first gives the same images up to the
    statistics). The split is stratified: each class is shuffled by `seed` and divided in the
    given fractions (rounded per class), so the three splits share no image and keep the class
    balance; each split is then shuffled. The same seed gives the same task.

    Args:
        image_size: Height and width of the images, at least 8.
        seed: Seed of the split (a non-negative int).
        validation_fraction: Fraction of each class in the validation split, in (0, 1).
        holdout_fraction: Fraction of each class in the held-out split, in (0, 1);
            `validation_fraction + holdout_fraction` must be below 1.

    Returns:
        An `ImageTask` with float32 images of shape `(n, image_size, image_size, 1)`, int32
        labels and `num_classes=10` (the defaults: 1,079 / 359 / 359 images).

    Example:

    >>> task = digits_task(image_size=16, seed=0)
    >>> task.input_shape, task.num_classes
    ((16, 16, 1), 10)
    """
    image_size = check_int("image_size", image_size, 8)
    seed = check_int("seed", seed, 0)
    validation_fraction = _check_split_fraction("validation_fraction", validation_fraction)
    holdout_fraction = _check_split_fraction("holdout_fraction", holdout_fraction)
    if validation_fraction + holdout_fraction >= 1.0:
        raise ValueError(
            "`validation_fraction + holdout_fraction` must be below 1, leaving images to train on. "
            f"Received: validation_fraction={validation_fraction}, holdout_fraction={holdout_fraction}"
        )
    images, labels = _load_digits()
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "holdout": []}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(validation_fraction * len(members)))
        n_holdout = int(round(holdout_fraction * len(members)))
        parts["val"].append(members[:n_val])
        parts["holdout"].append(members[n_val : n_val + n_holdout])
        parts["train"].append(members[n_val + n_holdout :])
    indices = {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}
    for name, argument, fraction in (
        ("validation", "validation_fraction", validation_fraction),
        ("held-out", "holdout_fraction", holdout_fraction),
    ):
        if len(indices["val" if name == "validation" else "holdout"]) == 0:
            raise ValueError(
                f"`{argument}` is too small: the {name} split of the digits task would be empty. "
                f"Received: {argument}={fraction}"
            )
    if len(indices["train"]) == 0:  # pragma: no cover - the sum is below 1 and the classes have ~180 images
        raise ValueError("The fractions leave no training image.")

    resize = bilinear_matrix(images.shape[1], image_size)
    enlarged = np.einsum("ih,nhw,jw->nij", resize, images, resize)
    training = enlarged[indices["train"]]
    mean, std = training.mean(), training.std()
    standardized = ((enlarged - mean) / std)[..., None].astype(np.float32)
    return ImageTask(
        x_train=standardized[indices["train"]],
        y_train=labels[indices["train"]],
        x_val=standardized[indices["val"]],
        y_val=labels[indices["val"]],
        x_holdout=standardized[indices["holdout"]],
        y_holdout=labels[indices["holdout"]],
        num_classes=int(labels.max()) + 1,
    )


# --- argument checks shared by the builders --------------------------------------------------------


def _check_norm_layer(norm_layer: object) -> NormLayerFactory:
    if not callable(norm_layer) or isinstance(norm_layer, keras.layers.Layer):
        raise TypeError(
            "`norm_layer` must be a zero-argument callable returning a fresh Keras layer (e.g. "
            "`lambda: keras.layers.Activation('relu')`), not a layer instance. "
            f"Received: norm_layer={norm_layer!r}"
        )
    return norm_layer


def _positive_ints(value: object) -> tuple[int, ...] | None:
    """`value` as a tuple of ints if it is a sequence (not a string) of ints >= 1, else None."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return None
    items = tuple(value)
    if not all(isinstance(item, numbers.Integral) and not isinstance(item, bool) for item in items):
        return None
    numbers_ = tuple(int(item) for item in items)
    return numbers_ if all(item >= 1 for item in numbers_) else None


def _check_input_shape(input_shape: object) -> tuple[int, int, int]:
    sizes = _positive_ints(input_shape)
    if sizes is None or len(sizes) != 3:
        raise ValueError(
            "`input_shape` must be the shape of one channels-last image: three positive ints "
            f"(height, width, channels), e.g. (16, 16, 1). Received: input_shape={input_shape!r}"
        )
    return sizes[0], sizes[1], sizes[2]


def _check_blocks(blocks: object) -> tuple[int, ...]:
    counts = _positive_ints(blocks)
    if not counts:
        raise ValueError(
            "`blocks` must be a non-empty sequence of positive ints, the number of blocks of each "
            f"stage, e.g. (1, 1, 1). Received: blocks={blocks!r}"
        )
    return counts


def _check_common(
    norm_layer: object, input_shape: object, num_classes: object, width: object, blocks: object
) -> tuple[NormLayerFactory, tuple[int, int, int], int, int, tuple[int, ...]]:
    return (
        _check_norm_layer(norm_layer),
        _check_input_shape(input_shape),
        check_int("num_classes", num_classes, 2),
        check_int("width", width, 1),
        _check_blocks(blocks),
    )


def stage_channels(width: int, stage: int) -> int:
    """Channels of stage `stage` (0-based): `width * 2 ** (stage // 2)`, so `width, width,
    2 * width, 2 * width, 4 * width, ...`.

    The reference networks double their channels at each downsampling; doubling every second
    stage keeps the proxies within ~30k parameters at width 16.
    """
    return width * 2 ** (stage // 2)


def stage_stride(stage: int) -> int:
    """Stride of the first block of stage `stage`: 1 in the first stage, 2 in every later one."""
    return 1 if stage == 0 else 2


def _conv(filters: int, kernel_size: int, name: str, strides: int = 1, use_bias: bool = False) -> keras.layers.Layer:
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_initializer="he_normal",
        name=name,
    )


@keras.saving.register_keras_serializable(package="keras_norms")
class ShiftedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` (channels last, "same" padding) computed, on JAX, as a sum of
    shifted copies of the input times the kernel's taps.

    XLA's CPU convolution with one group per channel is slow, its kernel gradient above all: a
    proxy's training step takes 3 to 7 times longer with it. The sum of `k * k` shifted products
    fuses into a few elementwise loops instead. The weights, the padding (TensorFlow's "same":
    the extra row and column at the end) and so the outputs are those of the Keras layer, which
    the other backends run unchanged.
    """

    def __init__(self, kernel_size: int | tuple[int, int], **kwargs: Any) -> None:
        kwargs.setdefault("padding", "same")
        super().__init__(kernel_size, **kwargs)
        if self.padding != "same" or self.data_format != "channels_last" or self.depth_multiplier != 1:
            raise ValueError(
                "ShiftedDepthwiseConv2D supports padding='same', data_format='channels_last' and "
                f"depth_multiplier=1 only. Received: padding={self.padding!r}, "
                f"data_format={self.data_format!r}, depth_multiplier={self.depth_multiplier}"
            )
        if tuple(self.dilation_rate) != (1, 1):
            raise ValueError(f"ShiftedDepthwiseConv2D has no dilation. Received: dilation_rate={self.dilation_rate}")

    def call(self, inputs: Any) -> Any:
        if keras.backend.backend() != "jax":
            return super().call(inputs)
        (k_h, k_w), (s_h, s_w) = self.kernel_size, self.strides
        height, width = inputs.shape[1], inputs.shape[2]
        out_h, out_w = -(-height // s_h), -(-width // s_w)
        pad_h = max((out_h - 1) * s_h + k_h - height, 0)
        pad_w = max((out_w - 1) * s_w + k_w - width, 0)
        padded = ops.pad(inputs, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
        kernel = ops.cast(self.kernel[..., 0], inputs.dtype)  # (k_h, k_w, channels)
        outputs = None
        for i in range(k_h):
            for j in range(k_w):
                window = padded[:, i : i + (out_h - 1) * s_h + 1 : s_h, j : j + (out_w - 1) * s_w + 1 : s_w, :]
                term = window * kernel[i, j]
                outputs = term if outputs is None else outputs + term
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, inputs.dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def _depthwise(kernel_size: int, strides: int, name: str) -> keras.layers.Layer:
    return ShiftedDepthwiseConv2D(
        kernel_size, strides=strides, use_bias=False, depthwise_initializer="he_normal", name=name
    )


def _head(x: Any, inputs: Any, num_classes: int, name: str) -> keras.Model:
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


# --- ResNet ------------------------------------------------------------------------------------------


def resnet(
    norm_layer: NormLayerFactory,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
) -> keras.Model:
    """A tiny pre-activation ResNet (ResNet v2) for the search: the paper's ResNet-50 proxy.

    Imitates He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks" (arXiv
    1603.05027), the CIFAR variant with basic blocks: a 3x3 stride-2 stem conv (`width` channels,
    no norm), then stages of basic blocks `norm_layer -> conv 3x3 -> norm_layer -> conv 3x3`, added to
    the shortcut, then `norm_layer -> global average pooling -> Dense(num_classes)` (logits).

    Norm positions: the pre-activation design puts every normalization right before its
    activation, so each BN+ReLU of the reference becomes one `norm_layer()` and no
    normalization without an activation is left over (the post-activation ResNet's second BN of
    a branch has none). `norm_layer` is called `2 * sum(blocks) + 1` times (7 by default).

    Stage `i` has `blocks[i]` blocks of `stage_channels(width, i)` channels (`width, width,
    2 * width, ...`); every stage after the first halves the resolution with a stride-2 first
    conv. A block that changes the shape takes its shortcut from the normalized input through a
    1x1 conv of the same stride, as in ResNet v2. 24,858 parameters at width 16 and 10 classes
    (with BN+ReLU).

    Args:
        norm_layer: Zero-argument callable returning a fresh normalization-activation layer
            (channels last).
        input_shape: `(height, width, channels)` of one image.
        num_classes: Number of classes (>= 2): the model returns that many logits.
        width: Channels of the stem and the first stage.
        blocks: Number of basic blocks in each stage (non-empty, each >= 1).

    Returns:
        An uncompiled `keras.Model` from images to logits.

    Example:

    >>> model = resnet(lambda: keras.layers.Activation("relu"), input_shape=(16, 16, 1), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    norm_layer, input_shape, num_classes, width, blocks = _check_common(
        norm_layer, input_shape, num_classes, width, blocks
    )
    inputs = keras.Input(shape=input_shape)
    x = _conv(width, 3, "stem_conv", strides=STEM_STRIDE)(inputs)
    channels_in = width
    for stage, count in enumerate(blocks):
        channels = stage_channels(width, stage)
        for block in range(count):
            strides = stage_stride(stage) if block == 0 else 1
            prefix = f"stage{stage + 1}_block{block + 1}"
            activated = norm_layer()(x)
            if strides != 1 or channels_in != channels:
                shortcut = _conv(channels, 1, f"{prefix}_shortcut", strides=strides)(activated)
            else:
                shortcut = x
            y = _conv(channels, 3, f"{prefix}_conv1", strides=strides)(activated)
            y = norm_layer()(y)
            y = _conv(channels, 3, f"{prefix}_conv2")(y)
            x = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
            channels_in = channels
    x = norm_layer()(x)
    return _head(x, inputs, num_classes, "resnet_proxy")


# --- MobileNetV2 and EfficientNet --------------------------------------------------------------------


def _check_expansion(expansion: object) -> int:
    return check_int("expansion", expansion, 1)


def _inverted_residual(
    x: Any,
    norm_layer: NormLayerFactory,
    *,
    channels_in: int,
    channels: int,
    expansion: int,
    strides: int,
    kernel_size: int,
    se_ratio: float | None,
    prefix: str,
) -> Any:
    """expand 1x1 -> norm_layer -> depthwise -> norm_layer -> [squeeze-excitation] -> project 1x1."""
    inputs = x
    hidden = channels_in * expansion
    if expansion != 1:
        x = _conv(hidden, 1, f"{prefix}_expand")(x)
        x = norm_layer()(x)
    x = _depthwise(kernel_size, strides, f"{prefix}_depthwise")(x)
    x = norm_layer()(x)
    if se_ratio is not None:
        squeezed = max(1, int(channels_in * se_ratio))
        scale = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_squeeze")(x)
        scale = keras.layers.Conv2D(squeezed, 1, activation="swish", name=f"{prefix}_se_reduce")(scale)
        scale = keras.layers.Conv2D(hidden, 1, activation="sigmoid", name=f"{prefix}_se_expand")(scale)
        x = keras.layers.Multiply(name=f"{prefix}_se_excite")([x, scale])
    # The linear bottleneck: no normalization and no activation (see the builders' docstrings).
    x = _conv(channels, 1, f"{prefix}_project", use_bias=True)(x)
    if strides == 1 and channels_in == channels:
        x = keras.layers.Add(name=f"{prefix}_add")([inputs, x])
    return x


def mobilenet(
    norm_layer: NormLayerFactory,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
    expansion: int = 4,
) -> keras.Model:
    """A tiny MobileNetV2 for the search: inverted residuals with linear bottlenecks.

    Imitates Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
    Bottlenecks" (arXiv 1801.04381): a 3x3 stride-2 stem conv (`width` channels) and
    `norm_layer`, then stages of inverted residual blocks `expand 1x1 (x expansion) ->
    norm_layer -> depthwise 3x3 -> norm_layer -> project 1x1`, with an identity shortcut where
    the shape is kept, then a 1x1 conv to `4 * width` channels, `norm_layer`, global average
    pooling and `Dense(num_classes)` (logits). As in MobileNetV2, the first stage's blocks have
    no expansion (expansion factor 1: no expand conv and no norm before the depthwise conv).

    Norm positions: every BN+ReLU6 of the reference (stem, expansion, depthwise, head) becomes
    one `norm_layer()`. The reference's BN after the projection has no activation; here the
    projection is a plain 1x1 conv with a bias and *no normalization*, so that the proxy holds
    no batch-dependent layer besides the candidate (batch-independent candidates are scored as
    such). The residual stream is renormalized by the next block's expansion `norm_layer` and
    the network is shallow, which keeps training stable. `norm_layer` is called
    `2 * sum(blocks) - blocks[0] + 2` times (7 by default).

    Stage `i` has `blocks[i]` blocks with `stage_channels(width, i)` output channels (`width,
    width, 2 * width, ...`); every stage after the first halves the resolution in its first
    block's depthwise conv. 10,986 parameters at width 16 and 10 classes (with BN+ReLU).

    Args:
        norm_layer: Zero-argument callable returning a fresh normalization-activation layer
            (channels last).
        input_shape: `(height, width, channels)` of one image.
        num_classes: Number of classes (>= 2): the model returns that many logits.
        width: Channels of the stem and the first stage.
        blocks: Number of inverted residual blocks in each stage (non-empty, each >= 1).
        expansion: Expansion factor of the blocks' hidden channels (MobileNetV2: 6).

    Returns:
        An uncompiled `keras.Model` from images to logits.

    Example:

    >>> model = mobilenet(lambda: keras.layers.Activation("relu"), input_shape=(16, 16, 1), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    norm_layer, input_shape, num_classes, width, blocks = _check_common(
        norm_layer, input_shape, num_classes, width, blocks
    )
    expansion = _check_expansion(expansion)
    return _inverted_residual_net(
        norm_layer, input_shape, num_classes, width, blocks, expansion, (3, 3, 3), None, "mobilenet_proxy"
    )


def efficientnet(
    norm_layer: NormLayerFactory,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 16,
    blocks: Sequence[int] = (1, 1, 1),
    expansion: int = 4,
    se_ratio: float = 0.25,
) -> keras.Model:
    """A tiny EfficientNet for the search: MBConv blocks with squeeze-excitation.

    Imitates Tan, Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"
    (arXiv 1905.11946), B0's layout in miniature: a 3x3 stride-2 stem conv (`width` channels) and
    `norm_layer`, then stages of MBConv blocks `expand 1x1 (x expansion) -> norm_layer ->
    depthwise kxk -> norm_layer -> squeeze-excitation -> project 1x1`, with an identity shortcut
    where the shape is kept, then a 1x1 conv to `4 * width` channels, `norm_layer`, global
    average pooling and `Dense(num_classes)` (logits). As in B0, the first stage's blocks have
    no expansion (MBConv1) and the second stage uses 5x5 depthwise kernels (the others 3x3).
    The squeeze-excitation (pooling, 1x1 conv to `se_ratio` times the block's input channels
    with swish, 1x1 conv back with a sigmoid gate) has no normalization and keeps its own
    activations, as in the reference.

    Norm positions: every BN+swish of the reference (stem, expansion, depthwise, head) becomes
    one `norm_layer()`. The reference's BN after the projection has no activation; here the
    projection is a plain 1x1 conv with a bias and *no normalization*, so that the proxy holds
    no batch-dependent layer besides the candidate, as in `mobilenet`. `norm_layer` is called
    `2 * sum(blocks) - blocks[0] + 2` times (7 by default).

    Stage `i` has `blocks[i]` blocks with `stage_channels(width, i)` output channels (`width,
    width, 2 * width, ...`); every stage after the first halves the resolution in its first
    block's depthwise conv. 13,318 parameters at width 16 and 10 classes (with BN+ReLU).

    Args:
        norm_layer: Zero-argument callable returning a fresh normalization-activation layer
            (channels last).
        input_shape: `(height, width, channels)` of one image.
        num_classes: Number of classes (>= 2): the model returns that many logits.
        width: Channels of the stem and the first stage.
        blocks: Number of MBConv blocks in each stage (non-empty, each >= 1).
        expansion: Expansion factor of the blocks after the first stage (EfficientNet: 6).
        se_ratio: Squeeze-excitation channels as a fraction of the block's input channels, in
            (0, 1] (EfficientNet: 0.25).

    Returns:
        An uncompiled `keras.Model` from images to logits.

    Example:

    >>> model = efficientnet(lambda: keras.layers.Activation("swish"), input_shape=(16, 16, 1), num_classes=10)
    >>> model.output_shape
    (None, 10)
    """
    norm_layer, input_shape, num_classes, width, blocks = _check_common(
        norm_layer, input_shape, num_classes, width, blocks
    )
    expansion = _check_expansion(expansion)
    se_ratio = check_number("se_ratio", se_ratio, 0.0, 1.0, exclusive_minimum=True)
    # EfficientNet-B0's second stage has 5x5 depthwise kernels.
    return _inverted_residual_net(
        norm_layer, input_shape, num_classes, width, blocks, expansion, (3, 5, 3), se_ratio, "efficientnet_proxy"
    )


def _inverted_residual_net(
    norm_layer, input_shape, num_classes, width, blocks, expansion, kernel_sizes, se_ratio, name
):
    """Stem, stages of inverted residuals (no expansion in the first stage, as in MobileNetV2 and
    EfficientNet-B0), a 1x1 head convolution and the classifier."""
    inputs = keras.Input(shape=input_shape)
    x = _conv(width, 3, "stem_conv", strides=STEM_STRIDE)(inputs)
    x = norm_layer()(x)
    channels_in = width
    for stage, count in enumerate(blocks):
        channels = stage_channels(width, stage)
        for block in range(count):
            x = _inverted_residual(
                x,
                norm_layer,
                channels_in=channels_in,
                channels=channels,
                expansion=1 if stage == 0 else expansion,
                strides=stage_stride(stage) if block == 0 else 1,
                kernel_size=kernel_sizes[min(stage, len(kernel_sizes) - 1)],
                se_ratio=se_ratio,
                prefix=f"stage{stage + 1}_block{block + 1}",
            )
            channels_in = channels
    x = _conv(4 * width, 1, "head_conv")(x)
    x = norm_layer()(x)
    return _head(x, inputs, num_classes, name)


PROXIES: dict[str, Callable[..., keras.Model]] = {
    "resnet": resnet,
    "mobilenet": mobilenet,
    "efficientnet": efficientnet,
}
