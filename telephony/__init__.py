"""SIP gateway (pjsua2) and the WebSocket media protocol. Carries audio, not meaning:
talks to the bot over the media WebSocket, never by import."""
