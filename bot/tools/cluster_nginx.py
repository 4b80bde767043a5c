"""nginx's configuration of one cluster (`bot.tools.cluster`): the public door
(`/webhooks/` and `/socket.io/` only), the consoles, the action servers and the
Rasa HTTP API for the consoles, each a load-balanced server on loopback."""

from __future__ import annotations

from bot.tools.cluster_config import ClusterConfig


def nginx_config(config: ClusterConfig) -> str:
    """nginx's configuration for `config`: four load-balanced servers, one of them public."""

    def servers(ports: list[int]) -> str:
        # A replica that refuses a connection is skipped for 2 s: its requests
        # go to the next one (nginx retries only what it has not yet sent).
        return "\n".join(
            f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in ports
        )

    rasa = [config.rasa_port(i) for i in range(config.rasa_replicas)]
    actions = [config.action_port(i) for i in range(config.action_replicas)]
    consoles = [config.console_port(i) for i in range(config.console_replicas)]
    log = config.log_dir
    # Every server logs in this format: the path without its query string.
    access_log = f"access_log {log}/nginx-access.log upstream;"
    proxy = """
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_next_upstream error timeout http_502 http_503;"""
    return f"""# Written by bot/tools/cluster.py for this cluster; rewritten at every start.
worker_processes 1;
pid {config.run_dir}/nginx.pid;
error_log {log}/nginx-error.log warn;

events {{
  worker_connections 4096;
}}

http {{
  # $uri, not $request or $request_uri: no query string is ever written down.
  log_format upstream '$time_iso8601 $request_method $uri $status '
                      'upstream=$upstream_addr time=$request_time';
  {access_log}
  client_body_temp_path {config.run_dir}/nginx-temp/body;
  proxy_temp_path {config.run_dir}/nginx-temp/proxy;
  fastcgi_temp_path {config.run_dir}/nginx-temp/fastcgi;
  uwsgi_temp_path {config.run_dir}/nginx-temp/uwsgi;
  scgi_temp_path {config.run_dir}/nginx-temp/scgi;
  client_max_body_size 2m;
  # Requests and answers stay in memory: an action server call carries the
  # whole domain, and nginx's workers may not write where the cluster runs.
  client_body_buffer_size 2m;
  proxy_buffer_size 64k;
  proxy_buffers 64 32k;
  proxy_busy_buffers_size 128k;
  proxy_max_temp_file_size 0;

  map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
  }}

  # No idle connections are kept to the replicas: a request sent on a kept
  # connection to a replica that has died fails after it was sent, and nginx
  # cannot pass a POST on to the next replica then; a new connection to a dead
  # replica is refused at once and the request goes to the next one.
  upstream rasa {{
{servers(rasa)}
  }}
  # socket.io: a websocket is one connection, but the long-polling fallback
  # makes several requests that must reach the replica that holds the session.
  upstream rasa_sockets {{
    ip_hash;
{servers(rasa)}
  }}
  upstream actions {{
{servers(actions)}
  }}
  upstream console {{
{servers(consoles)}
  }}

  # The public door: the channels and socket.io, nothing of the HTTP API.
  server {{
    listen 127.0.0.1:{config.entry_port};
    {access_log}
    location /webhooks/ {{
      proxy_pass http://rasa;{proxy}
      proxy_read_timeout 120s;
    }}
    location /socket.io/ {{
      proxy_pass http://rasa_sockets;{proxy}
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
    }}
    location / {{
      return 404;
    }}
  }}
  server {{
    listen 127.0.0.1:{config.entry_port + 1};
    {access_log}
    location / {{
      proxy_pass http://console;{proxy}
      proxy_read_timeout 120s;
    }}
  }}
  server {{
    listen 127.0.0.1:{config.entry_port + 2};
    {access_log}
    location / {{
      proxy_pass http://actions;{proxy}
      proxy_read_timeout 120s;
    }}
  }}
  # The Rasa HTTP API for the consoles: internal, as the action port is.
  server {{
    listen 127.0.0.1:{config.entry_port + 3};
    {access_log}
    location / {{
      proxy_pass http://rasa;{proxy}
      proxy_read_timeout 120s;
    }}
  }}
}}
"""
