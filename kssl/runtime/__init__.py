"""What kssl runs on: the CPU's kernels (`cpu`), devices and replicas (`distribute`), float
precision and loss scaling (`precision`, `loss_scaling`), memory (`memory`), and the
terminal it prints to (`terminal`, `quiet`). Importing this package imports nothing."""
