"""The market's vocabulary, shared by every service and pure: intervals, exact decimals and fixed
point, candle aggregation.
"""
