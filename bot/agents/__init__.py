"""The agent hub: users and roles, queues per team, the agent console, callbacks."""
