// SGXKernel
