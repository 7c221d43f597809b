"""ionscreen.kernels"""
