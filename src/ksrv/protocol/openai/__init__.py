"""OpenAI's wire types (completions, chat, embeddings, rerank, models) and its error envelope.

Pydantic models with OpenAI's field names and defaults, validated once at the edge; the
server's OpenAI routes decode into them and models (`ksrv.model.openai`) take and return them.
"""
