"""The public demo's rules (VS_PUBLIC_DEMO): who sees and may change which image (visibility.py), each
visitor's fair share (fair_share.py) and the sliding windows behind rate limits (recent.py)."""
