"""Address management: range sets, the allocator and its stores."""
