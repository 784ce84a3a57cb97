"""The choices and defaults of the detectors' parameters that the command line shows, in a
module that imports no torch (``--help`` reads them here); the detectors import them too."""

DEFAULT_ARCH = "resnet10t"  # cnn: the timm backbone
# cnn: what its backbone sees: the colors (rgb), the neighbouring-pixel relations of each 2x2
# block (npr: a pixel minus the block's first pixel, Tan et al. 2024, where upsampling leaves
# its traces), or both
CNN_INPUTS = ("rgb", "npr", "rgb+npr")
PALETTE_CLASSES = ("both", "real")  # cnn: which training images `palette_augment` may quantize
CLASSIFIERS = ("auto", "logistic", "boosting")  # features: auto = the best validation AUC
TILINGS = ("tile", "resize")  # likelihood: how images larger than the model are scored
# likelihood: the sampling settings of the samples the scoring model draws itself to learn on
DEFAULT_SAMPLING = ("temperature=1", "temperature=0.9", "top_k=40", "top_p=0.9")
# how a fusion combines its members' scores: a fitted regression, or the mean z-score
FUSION_COMBINES = ("regression", "mean")
# cnn, fusion: size calibration judges images of at most this many distinct colors apart (real
# crops through palettes of 24-64 colors scored far above photographs; docs/results.md)
FEW_COLORS = 64
