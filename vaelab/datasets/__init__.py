"""The data sets' sources and caches, and the FID Inception weights: one module per source.

``mnist``, ``fashion_mnist``, ``pendulum`` (rendered here; Klushyn et al. 2019, chapter 04) and
``celeba`` each offer ``prepare(root)`` (build and verify the cache under the data root) and
``load(root, split)`` (read it; ``vaelab.data.load_dataset`` calls it); ``fid_weights.prepare(root)``
places the FID Inception weights that ``vaelab.fid`` reads. Each module is also a command,
``python -m vaelab.datasets.NAME [--root DIR]``; ``common`` holds what they share.
"""
