"""ionscreen.structures"""
