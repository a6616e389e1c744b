#!/bin/sh
# Prepares the demo mail server, then runs the command (by default Dovecot in the foreground).
set -eu

DEMO_USER="${DEMO_USER:-demo}"
DEMO_PASSWORD="${DEMO_PASSWORD:-demo}"
MAIL_ROOT=/srv/mail
PRIVATE=/etc/dovecot/private

# A self-signed certificate for STARTTLS/STLS, made once per container.
if [ ! -s "$PRIVATE/demo-key.pem" ]; then
  mkdir -p "$PRIVATE"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=dovecot" -addext "subjectAltName=DNS:dovecot,DNS:localhost,IP:127.0.0.1" \
    -keyout "$PRIVATE/demo-key.pem" -out "$PRIVATE/demo-cert.pem" 2>/dev/null
  chmod 600 "$PRIVATE/demo-key.pem"
fi

# passwd-file: user:{PLAIN}password:uid:gid::home::
printf '%s:{PLAIN}%s:5000:5000::%s/%s::\n' "$DEMO_USER" "$DEMO_PASSWORD" "$MAIL_ROOT" "$DEMO_USER" > /etc/dovecot/users
chown root:dovecot /etc/dovecot/users
chmod 640 /etc/dovecot/users

# Seed the INBOX once with the sample messages (files straight into Maildir/cur, as a delivery would).
MAILDIR="$MAIL_ROOT/$DEMO_USER/Maildir"
if [ ! -d "$MAILDIR/cur" ]; then
  mkdir -p "$MAILDIR/cur" "$MAILDIR/new" "$MAILDIR/tmp"
  now=$(date +%s)
  i=0
  for message in /opt/demo-seed/*.eml; do
    [ -f "$message" ] || continue
    i=$((i + 1))
    # Maildir names sort in seed order, so UIDs follow the file names (01-, 02-, ...).
    cp "$message" "$MAILDIR/cur/$now.M$(printf %03d "$i").demo:2,"
  done
  chown -R vmail:vmail "$MAIL_ROOT/$DEMO_USER"
  chmod -R go-rwx "$MAIL_ROOT/$DEMO_USER"
  echo "entrypoint: seeded $i messages into the INBOX of $DEMO_USER"
fi

exec "$@"
