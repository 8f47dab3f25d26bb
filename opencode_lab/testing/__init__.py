"""Loopback servers that speak each vendor's wire format and misbehave on request.

They ship with the package, so tests, benchmarks and notebooks share them. Three parts:

* `transport`: the HTTP/1.1 server (parsing, responses, streams, lifecycle);
* `faults`: the fault vocabulary, which fault a request meets, the log;
* one wire format per vendor, each with its server: `FaultServer` (OpenAI chat completions,
  ``openai_server``), `AnthropicServer` (Messages, ``anthropic_server``), `GeminiServer`
  (generateContent, ``gemini_server``), `BedrockServer` (Converse with SigV4 checked, ``bedrock_server``;
  its signature check needs botocore), `VertexServer` (Gemini and Claude on Vertex AI, with a token
  endpoint, ``vertex_server``), joined to the other two parts by ``server.VendorServer``.

``scripted`` is the answer they all give by default; a `Reply` function gives other words.
Any server runs in a child process too (``FaultServer.spawn()``: a `SpawnedFaultServer`).
"""

from opencode_lab.testing.anthropic_server import AnthropicServer
from opencode_lab.testing.bedrock_server import BedrockServer
from opencode_lab.testing.gemini_server import GeminiServer
from opencode_lab.testing.openai_server import OUTCOMES, FaultServer
from opencode_lab.testing.scripted import Reply
from opencode_lab.testing.server import VendorServer
from opencode_lab.testing.spawned import SpawnedFaultServer
from opencode_lab.testing.vertex_server import VertexServer

__all__ = [
    "OUTCOMES",
    "AnthropicServer",
    "BedrockServer",
    "FaultServer",
    "GeminiServer",
    "Reply",
    "SpawnedFaultServer",
    "VendorServer",
    "VertexServer",
]
