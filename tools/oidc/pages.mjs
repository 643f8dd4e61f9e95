// The provider's own pages (Vietnamese): the sign-in form, the sign-out question, errors.
// Plain HTML with no script, labelled fields and enough contrast for axe-core.

const STYLE = `
body{font-family:system-ui,"Noto Sans",sans-serif;background:#f4f6f8;color:#1b1f23;margin:0}
main{max-width:26rem;margin:3rem auto;background:#fff;padding:1.5rem 2rem;border-radius:6px;
box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:.8rem 0 .3rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #57606a}
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;background:#0b4f9c;color:#fff;
border:0;border-radius:4px;cursor:pointer}button.secondary{background:#57606a}
.error{color:#a40e26;font-weight:600}`;

export function escape(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

export function loginPage({ uid, clientName, username = '', error = '' }) {
  const alert = error ? `<p class="error" role="alert">${escape(error)}</p>` : '';
  return page(
    'Đăng nhập — Cổng định danh',
    `<h1>Đăng nhập cán bộ</h1>
<p>Đăng nhập để vào ${escape(clientName)}.</p>
${alert}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
<label for="username">Tên đăng nhập (mã cán bộ)</label>
<input id="username" name="username" required autofocus value="${escape(username)}">
<label for="password">Mật khẩu</label>
<input id="password" name="password" type="password" required>
<button type="submit">Đăng nhập</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort">
<button type="submit" class="secondary">Hủy đăng nhập</button>
</form>`,
  );
}

export function logoutPage(host, form) {
  // `form` is oidc-provider's hidden form (id op.logoutForm, with its xsrf token).
  return page(
    'Đăng xuất — Cổng định danh',
    `<h1>Đăng xuất khỏi ${escape(host)}?</h1>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Đăng xuất</button>
<button type="submit" form="op.logoutForm" class="secondary">Ở lại</button>`,
  );
}

export function loggedOutPage() {
  return page('Đã đăng xuất', '<h1>Đã đăng xuất</h1><p>Bạn đã đăng xuất khỏi cổng định danh.</p>');
}

export function errorPage(out) {
  const rows = Object.entries(out)
    .map(([key, value]) => `<p><strong>${escape(key)}</strong>: ${escape(value)}</p>`)
    .join('\n');
  return page('Lỗi đăng nhập', `<h1>Không thể đăng nhập</h1>\n${rows}`);
}
