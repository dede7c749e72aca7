"""Small synthetic data shared by the tests: images a VAE can actually learn."""
import torch

from vaelab.data import ImageData


def smooth_images(n: int, binarize: str = "none", seed: int = 0) -> ImageData:
    """n 6x6 grey images that are a smooth function (sigmoid of a fixed linear map) of two latent numbers."""
    g = torch.Generator().manual_seed(seed)
    a, w = torch.randn(n, 2, generator=g), 2 * torch.randn(2, 36, generator=torch.Generator().manual_seed(99))
    images = torch.sigmoid(a @ w).view(n, 1, 6, 6)
    return ImageData((images * 255).round().to(torch.uint8), binarize=binarize, seed=seed)
