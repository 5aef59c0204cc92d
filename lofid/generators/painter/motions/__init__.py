"""The painter's motions, one module per motion of the vocabulary (breathing and
hair_sway share figure.py: both warp the person). Each is a Motion: built once per
loop over the still picture, then draw(fb, t) for frame t."""
