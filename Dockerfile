FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY support_bot support_bot
COPY conversations conversations
COPY escalation escalation
COPY knowledge knowledge
RUN pip install --no-cache-dir .

COPY . .
RUN DEBUG=false SECRET_KEY=build-only python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["uvicorn", "support_bot.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--ws-max-size", "1048576", "--ws-per-message-deflate", "false", "--no-access-log"]
