"""The experiment runner: specs -> generation -> evaluation -> tables."""
