"""Each chapter's parameters, once (``vaelab.lab.chapter.Spec``): types and ranges, smoke values, the
paper's settings. One module per page of the book that has a parameters cell, named ``ch`` + the
page's file name (``celeba`` for the CelebA page); ``tests/test_chapter_params.py`` checks that every
page has one and that it names exactly the parameters of the page's parameters cell."""
