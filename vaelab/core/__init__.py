"""Probability and networks: what every model is built from.

Modules:

* ``config``: the data root, the device, the smoke switch
* ``compat``: fixes for one broken install (a CPU torch with a CUDA torchvision)
* ``malloc``: keeping freed memory for the next chunk of a long evaluation
* ``densities``: log-densities and Gaussian KLs in closed form
* ``posteriors``: q(z|x) as a torch Distribution, and the one way to sample it
* ``nets``: network builders (MLPs, gated layers)
* ``files``: atomic writes and the book's JSON layout
* ``modes``: eval mode without gradients inside a block
* ``validate``: the check of the package's own arguments
"""
