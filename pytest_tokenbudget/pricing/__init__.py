"""Dollars per token.

In: a model id (Anthropic, Bedrock, Vertex, OpenAI spellings) and the user's `pricing:`
overrides. Out: exact rates (Fractions) from genai-prices' bundled data with our supplement,
where each rate came from, and the prompt cache's published minimum lengths.
"""
