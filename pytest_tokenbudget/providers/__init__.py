"""The formats of recorded traffic, and the credentials in it.

In: HTTP exchanges as any recorder stored them (our cassettes, vcrpy, pytest-recording,
Bedrock event streams). Out: the `Usage` of each API call (Anthropic, Bedrock, Vertex,
OpenAI), token counts checked as the API reports them, and exchanges scrubbed of credentials
before anything is written.
"""
