"""The CIFAR ResNet-20 that the BN-only test and the ResNet-step benchmark share.

16/32/64 channels, 3 basic blocks per stage, 1x1 conv + BN shortcuts, BatchNormalization+ReLU
(momentum 0.9, epsilon 1e-5: torch's defaults). Swap the norms with
`keras_norms.surgery.replace_norm_layers`.
"""

import keras


def resnet20(input_shape=(32, 32, 3), classes=10, gamma_initializer="ones"):
    def bn():
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=gamma_initializer)

    inputs = keras.Input(input_shape)
    x = keras.layers.ReLU()(bn()(keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = keras.layers.Conv2D(filters, 3, strides, padding="same", use_bias=False)(x)
            y = keras.layers.ReLU()(bn()(y))
            y = bn()(keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
            if strides != 1:
                x = bn()(keras.layers.Conv2D(filters, 1, strides, use_bias=False)(x))
            x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x), name="resnet20")
