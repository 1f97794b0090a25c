"""Sluice: Python-native workflow orchestration. (façade filled in below)"""
