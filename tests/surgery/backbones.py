"""Small random-init backbones from keras.applications, keras-hub and keras-cv, built offline."""

import keras

IMAGE = (32, 32, 3)


def applications(name):
    constructor = {
        "resnet50": keras.applications.ResNet50,
        "mobilenet_v3_small": keras.applications.MobileNetV3Small,
        "efficientnet_v2_b0": keras.applications.EfficientNetV2B0,
    }[name]
    return constructor(weights=None, input_shape=IMAGE, classes=3)


def keras_hub_backbone(name):
    import keras_hub

    if name == "resnet":
        return keras_hub.models.ResNetBackbone(
            input_conv_filters=[64],
            input_conv_kernel_sizes=[3],
            stackwise_num_filters=[64, 32],
            stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2],
            block_type="basic_block",
            image_shape=IMAGE,
        )
    if name == "mobilenet":
        return keras_hub.models.MobileNetBackbone(
            stackwise_expansion=[[1], [4, 6]],
            stackwise_num_blocks=[1, 2],
            stackwise_num_filters=[[16], [24, 24]],
            stackwise_kernel_size=[[3], [3, 3]],
            stackwise_num_strides=[[2], [2, 1]],
            stackwise_se_ratio=[[0.25], [None, 0.25]],
            stackwise_activation=[["relu"], ["relu", "hard_swish"]],
            stackwise_padding=[[1], [1, 1]],
            output_num_filters=64,
            depthwise_filters=8,
            depthwise_stride=2,
            depthwise_residual=False,
            last_layer_filter=64,
            image_shape=IMAGE,
        )
    return keras_hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 2,
        stackwise_depth_coefficients=[1.0] * 2,
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[16, 16],
        stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"],
        stackwise_force_input_filters=[0] * 2,
        stackwise_nores_option=[False] * 2,
        input_shape=IMAGE,
        num_features=64,
    )


def keras_cv_backbone(name):
    import keras_cv

    if name == "resnet":
        return keras_cv.models.ResNetBackbone(
            stackwise_filters=[64, 32],
            stackwise_blocks=[1, 1],
            stackwise_strides=[1, 2],
            include_rescaling=False,
            input_shape=IMAGE,
            block_type="basic_block",
        )
    if name == "mobilenet_v3":
        return keras_cv.models.MobileNetV3Backbone(
            stackwise_expansion=[1, 4],
            stackwise_filters=[16, 24],
            stackwise_kernel_size=[3, 3],
            stackwise_stride=[2, 2],
            stackwise_se_ratio=[0.25, None],
            stackwise_activation=["relu", "hard_swish"],
            include_rescaling=False,
            input_shape=IMAGE,
        )
    return keras_cv.models.EfficientNetV2Backbone(
        include_rescaling=False,
        width_coefficient=1.0,
        depth_coefficient=1.0,
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[16, 16],
        stackwise_output_filters=[16, 24],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_conv_types=["fused", "unfused"],
        input_shape=IMAGE,
    )
