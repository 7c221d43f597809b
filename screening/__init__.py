"""ionscreen.screening"""
