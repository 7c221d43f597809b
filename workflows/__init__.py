"""ionscreen.workflows"""
