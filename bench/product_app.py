"""The product's ASGI application as deployed, plus the SQL count of querycount.

uvicorn bench.product_app:application --ws-max-size 1048576 --no-access-log
"""

from bench.querycount import ASGIApp, with_stats
from support_bot.asgi import application as product

application: ASGIApp = with_stats(product)
