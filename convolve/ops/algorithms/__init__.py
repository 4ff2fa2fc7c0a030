"""One module per convolution method, each with forward, grad_input and grad_weight."""
