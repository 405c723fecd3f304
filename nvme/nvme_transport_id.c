/*
 * Transport IDs as text: "trtype:PCIe traddr:0000:00:04.0",
 * "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn....".
 * Keys and the trtype/adrfam values are case-insensitive; a key is followed
 * by ':' or '=' and the value runs to the next space or tab. Every error
 * names the offending part.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ustor/env.h"

#include "nvme_internal.h"

struct name_value {
	const char *name;
	int value;
};

static const struct name_value g_trtypes[] = {
	{"PCIe", UST_NVME_TRANSPORT_PCIE},
	{"RDMA", UST_NVME_TRANSPORT_RDMA},
	{"FC", UST_NVME_TRANSPORT_FC},
	{"TCP", UST_NVME_TRANSPORT_TCP},
};

static const struct name_value g_adrfams[] = {
	{"IPv4", UST_NVME_ADRFAM_IPV4},
	{"IPv6", UST_NVME_ADRFAM_IPV6},
	{"IB", UST_NVME_ADRFAM_IB},
	{"FC", UST_NVME_ADRFAM_FC},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *lookup_name(const struct name_value *t, size_t n, int value)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (t[i].value == value)
			return t[i].name;
	}
	return NULL;
}

static int lookup_value(const struct name_value *t, size_t n, const char *name, int *value)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcasecmp(t[i].name, name) == 0) {
			*value = t[i].value;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ust_nvme_transport_type_str(enum ust_nvme_transport_type trtype)
{
	return lookup_name(g_trtypes, NELEM(g_trtypes), (int)trtype);
}

int ust_nvme_transport_type_parse(enum ust_nvme_transport_type *trtype, const char *str)
{
	int v;

	if (str == NULL || lookup_value(g_trtypes, NELEM(g_trtypes), str, &v) != 0)
		return -EINVAL;
	*trtype = (enum ust_nvme_transport_type)v;
	return 0;
}

const char *ust_nvme_adrfam_str(enum ust_nvme_adrfam adrfam)
{
	return lookup_name(g_adrfams, NELEM(g_adrfams), (int)adrfam);
}

int ust_nvme_adrfam_parse(enum ust_nvme_adrfam *adrfam, const char *str)
{
	int v;

	if (str == NULL || lookup_value(g_adrfams, NELEM(g_adrfams), str, &v) != 0)
		return -EINVAL;
	*adrfam = (enum ust_nvme_adrfam)v;
	return 0;
}

static int trid_error(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int trid_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

enum trid_key {
	KEY_TRTYPE,
	KEY_ADRFAM,
	KEY_TRADDR,
	KEY_TRSVCID,
	KEY_SUBNQN,
	NUM_KEYS,
};

static const char *const g_key_names[NUM_KEYS] = {"trtype", "adrfam", "traddr", "trsvcid",
						 "subnqn"};

static int copy_value(char *dst, size_t dstlen, const char *val, size_t len, const char *key,
		      char *errbuf, size_t errlen)
{
	if (len >= dstlen)
		return trid_error(errbuf, errlen, "%s is too long (%zu characters, at most %zu)",
				  key, len, dstlen - 1);
	memcpy(dst, val, len);
	dst[len] = '\0';
	return 0;
}

static int set_key(struct ust_nvme_transport_id *trid, enum trid_key key, const char *val,
		   size_t len, char *errbuf, size_t errlen)
{
	char tmp[64];

	switch (key) {
	case KEY_TRTYPE:
	case KEY_ADRFAM:
		if (len >= sizeof(tmp))
			return trid_error(errbuf, errlen, "%s '%.*s' is not known", g_key_names[key],
					  (int)len, val);
		memcpy(tmp, val, len);
		tmp[len] = '\0';
		if (key == KEY_TRTYPE && ust_nvme_transport_type_parse(&trid->trtype, tmp) != 0)
			return trid_error(errbuf, errlen,
					  "trtype '%s' is not known (PCIe, TCP, RDMA or FC)", tmp);
		if (key == KEY_ADRFAM && ust_nvme_adrfam_parse(&trid->adrfam, tmp) != 0)
			return trid_error(errbuf, errlen,
					  "adrfam '%s' is not known (IPv4, IPv6, IB or FC)", tmp);
		return 0;
	case KEY_TRADDR:
		return copy_value(trid->traddr, sizeof(trid->traddr), val, len, "traddr", errbuf,
				  errlen);
	case KEY_TRSVCID:
		return copy_value(trid->trsvcid, sizeof(trid->trsvcid), val, len, "trsvcid",
				  errbuf, errlen);
	case KEY_SUBNQN:
		return copy_value(trid->subnqn, sizeof(trid->subnqn), val, len, "subnqn", errbuf,
				  errlen);
	default:
		return -EINVAL;
	}
}

static int find_key(const char *p, size_t len, enum trid_key *key)
{
	int i;

	for (i = 0; i < NUM_KEYS; i++) {
		if (strlen(g_key_names[i]) == len && strncasecmp(p, g_key_names[i], len) == 0) {
			*key = (enum trid_key)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Checks of the whole ID once every key is read. */
static int trid_validate(struct ust_nvme_transport_id *trid, const bool *seen, char *errbuf,
			 size_t errlen)
{
	struct ust_pci_addr addr;

	if (!seen[KEY_TRTYPE])
		return trid_error(errbuf, errlen, "trtype is missing");
	if (trid->trtype == UST_NVME_TRANSPORT_PCIE) {
		if (seen[KEY_ADRFAM] || seen[KEY_TRSVCID] || seen[KEY_SUBNQN])
			return trid_error(errbuf, errlen,
					  "PCIe takes only traddr (no adrfam, trsvcid or subnqn)");
		if (!seen[KEY_TRADDR])
			return 0; /* "every PCIe controller", for probing */
		if (ust_pci_addr_parse(&addr, trid->traddr) != 0)
			return trid_error(errbuf, errlen,
					  "traddr '%s' is not a PCI address (DDDD:BB:DD.F)",
					  trid->traddr);
		ust_pci_addr_fmt(trid->traddr, sizeof(trid->traddr), &addr);
		return 0;
	}
	if (!seen[KEY_TRADDR])
		return trid_error(errbuf, errlen, "traddr is missing");
	if (!seen[KEY_ADRFAM] && (trid->trtype == UST_NVME_TRANSPORT_TCP ||
				  trid->trtype == UST_NVME_TRANSPORT_RDMA))
		trid->adrfam = strchr(trid->traddr, ':') != NULL ? UST_NVME_ADRFAM_IPV6
								 : UST_NVME_ADRFAM_IPV4;
	return 0;
}

int ust_nvme_transport_id_parse(struct ust_nvme_transport_id *trid, const char *str,
				char *errbuf, size_t errlen)
{
	bool seen[NUM_KEYS] = {false};
	const char *p, *sep, *end;
	enum trid_key key;
	int rc;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (trid == NULL || str == NULL)
		return trid_error(errbuf, errlen, "no transport ID given");
	memset(trid, 0, sizeof(*trid));
	p = str;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		end = p + strcspn(p, " \t");
		sep = p + strcspn(p, ":=");
		if (sep >= end)
			return trid_error(errbuf, errlen, "'%.*s' is not key:value", (int)(end - p),
					  p);
		if (find_key(p, (size_t)(sep - p), &key) != 0)
			return trid_error(errbuf, errlen,
					  "unknown key '%.*s' (trtype, adrfam, traddr, trsvcid, "
					  "subnqn)",
					  (int)(sep - p), p);
		if (seen[key])
			return trid_error(errbuf, errlen, "%s is given twice", g_key_names[key]);
		if (sep + 1 == end)
			return trid_error(errbuf, errlen, "%s has no value", g_key_names[key]);
		rc = set_key(trid, key, sep + 1, (size_t)(end - sep - 1), errbuf, errlen);
		if (rc != 0)
			return rc;
		seen[key] = true;
		p = end;
	}
	return trid_validate(trid, seen, errbuf, errlen);
}

static int fmt_append(char *buf, size_t len, size_t *off, const char *key, const char *val)
{
	int n;

	if (val == NULL || val[0] == '\0')
		return 0;
	n = snprintf(buf + *off, len - *off, "%s%s:%s", *off ? " " : "", key, val);
	if (n < 0 || (size_t)n >= len - *off)
		return -ENOSPC;
	*off += (size_t)n;
	return 0;
}

int ust_nvme_transport_id_fmt(char *buf, size_t len, const struct ust_nvme_transport_id *trid)
{
	size_t off = 0;
	int rc;

	if (buf == NULL || len == 0 || trid == NULL)
		return -EINVAL;
	buf[0] = '\0';
	rc = fmt_append(buf, len, &off, "trtype", ust_nvme_transport_type_str(trid->trtype));
	if (rc == 0)
		rc = fmt_append(buf, len, &off, "adrfam", ust_nvme_adrfam_str(trid->adrfam));
	if (rc == 0)
		rc = fmt_append(buf, len, &off, "traddr", trid->traddr);
	if (rc == 0)
		rc = fmt_append(buf, len, &off, "trsvcid", trid->trsvcid);
	if (rc == 0)
		rc = fmt_append(buf, len, &off, "subnqn", trid->subnqn);
	return rc;
}

int ust_nvme_transport_id_compare(const struct ust_nvme_transport_id *a,
				  const struct ust_nvme_transport_id *b)
{
	int rc;

	if (a->trtype != b->trtype)
		return a->trtype < b->trtype ? -1 : 1;
	if (a->trtype == UST_NVME_TRANSPORT_PCIE)
		return strcasecmp(a->traddr, b->traddr);
	if (a->adrfam != b->adrfam)
		return a->adrfam < b->adrfam ? -1 : 1;
	rc = strcasecmp(a->traddr, b->traddr);
	if (rc == 0)
		rc = strcmp(a->trsvcid, b->trsvcid);
	if (rc == 0)
		rc = strcmp(a->subnqn, b->subnqn);
	return rc;
}
