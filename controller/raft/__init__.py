"""Sans-I/O Raft consensus core: no grpc, no asyncio; time is ticks, randomness is injected."""
