/*
 * Data pointers for the PCIe transport: PRP entries and lists (Base spec
 * 4.1.1) and SGLs (Base spec 4.1.2), built from the payload's elements and
 * their IO addresses (ust_vtophys; an element may split where its memory is
 * not contiguous in IO space).
 *
 * PRP rules enforced here:
 *  - PRP1 may start anywhere in a page but must be dword aligned (bits 1:0
 *    clear); every later entry starts at offset 0 of a page;
 *  - only the last entry may end before a page boundary, so an element
 *    other than the last must end page aligned and every element after the
 *    first must start page aligned;
 *  - one or two entries go in PRP1/PRP2; more make PRP2 a pointer to a PRP
 *    list holding entries 2..n. A list page holds page_size / 8 entries;
 *    when more follow, the last entry of a full page is instead a pointer to
 *    the next list page ("PRP List" in Base spec 4.1.1), so a list of L
 *    entries needs ceil((L - 1) / (page_size / 8 - 1)) pages.
 *
 * The list is built in one pass without knowing its length: an entry that
 * lands in the last slot of a page stays there until another entry comes,
 * which moves it to the next page and puts the chain pointer in its place.
 */
#include <errno.h>
#include <string.h>

#include "ustor/env.h"

#include "nvme_internal.h"

/* Split the payload into IO-contiguous chunks and hand each to fn. */
typedef int (*chunk_fn)(void *ctx, uint64_t bus, uint32_t len);

static int for_each_chunk(struct nvme_request *req, chunk_fn fn, void *ctx)
{
	uint32_t remaining = req->payload_size, seg_len, n;
	uint64_t bus, contig;
	uint8_t *va;
	void *seg;
	int rc;

	nvme_payload_reset(req);
	while (remaining > 0) {
		rc = nvme_payload_next(req, &seg, &seg_len);
		if (rc != 0)
			return -EINVAL; /* fewer bytes than the command moves */
		if (seg_len > remaining)
			seg_len = remaining;
		va = seg;
		while (seg_len > 0) {
			contig = seg_len;
			bus = ust_vtophys(va, &contig);
			if (bus == UST_VTOPHYS_ERROR || contig == 0)
				return -EFAULT;
			n = contig < seg_len ? (uint32_t)contig : seg_len;
			rc = fn(ctx, bus, n);
			if (rc != 0)
				return rc;
			va += n;
			seg_len -= n;
			remaining -= n;
		}
	}
	return 0;
}

struct prp_ctx {
	uint32_t page_size;
	uint64_t *list;           /* list_pages pages, virtually contiguous */
	const uint64_t *list_bus; /* IO address of each list page */
	uint32_t list_pages;
	uint32_t nslots;          /* list slots used: entries and chain pointers */
	uint64_t prp1;
	uint32_t nentries;
	bool prev_ends_page; /* the last entry so far ended on a page boundary */
};

static int prp_add_entry(struct prp_ctx *c, uint64_t addr)
{
	uint32_t per_page = c->page_size / 8, page;

	if (c->nentries == 0) {
		c->prp1 = addr;
		c->nentries++;
		return 0;
	}
	/* With no list pages only PRP2 itself can hold the second entry. */
	if (c->nslots > 0 && c->list_pages == 0)
		return -EINVAL;
	if (c->nslots > 0 && c->nslots % per_page == 0) {
		/* The page is full and more follow: its last slot becomes the chain pointer. */
		page = c->nslots / per_page;
		if (page >= c->list_pages)
			return -EINVAL;
		c->list[c->nslots] = c->list[c->nslots - 1];
		c->list[c->nslots - 1] = c->list_bus[page];
		c->nslots++;
	}
	c->list[c->nslots++] = addr;
	c->nentries++;
	return 0;
}

static int prp_chunk(void *arg, uint64_t bus, uint32_t len)
{
	struct prp_ctx *c = arg;
	uint64_t mask = c->page_size - 1;
	uint32_t n;
	int rc;

	while (len > 0) {
		if (c->nentries == 0) {
			if (bus & 3)
				return -EINVAL; /* PRP1 must be dword aligned */
		} else {
			if (!c->prev_ends_page || (bus & mask) != 0)
				return -EINVAL;
		}
		n = c->page_size - (uint32_t)(bus & mask);
		if (n > len)
			n = len;
		rc = prp_add_entry(c, bus);
		if (rc != 0)
			return rc;
		c->prev_ends_page = ((bus + n) & mask) == 0;
		bus += n;
		len -= n;
	}
	return 0;
}

/*
 * A chunk that continues the previous one in the same page is not a new
 * entry: merge by feeding prp_chunk page-sized pieces only at page starts.
 */
struct prp_merge {
	struct prp_ctx *c;
	uint64_t next_bus; /* where the previous chunk ended */
	bool any;
};

static int prp_merge_chunk(void *arg, uint64_t bus, uint32_t len)
{
	struct prp_merge *m = arg;
	uint64_t mask = m->c->page_size - 1;
	uint32_t in_page;
	int rc;

	if (m->any && bus == m->next_bus && (bus & mask) != 0) {
		/* Same page as the previous entry: only the tail past it is new. */
		in_page = m->c->page_size - (uint32_t)(bus & mask);
		if (in_page >= len) {
			m->c->prev_ends_page = ((bus + len) & mask) == 0;
			m->next_bus = bus + len;
			return 0;
		}
		m->c->prev_ends_page = true;
		bus += in_page;
		len -= in_page;
	}
	rc = prp_chunk(m->c, bus, len);
	m->next_bus = bus + len;
	m->any = true;
	return rc;
}

uint32_t nvme_pcie_prp_list_pages(uint32_t page_size, uint32_t max_xfer)
{
	/* An unaligned PRP1 makes max_xfer / page_size list entries (PRP1 holds the rest). */
	uint64_t entries = (uint64_t)max_xfer / page_size, per_page = page_size / 8;

	if (entries <= per_page)
		return 1;
	/* Every page but the last gives its last slot to the chain pointer. */
	return (uint32_t)((entries - 1 + per_page - 2) / (per_page - 1));
}

int nvme_pcie_build_prps(struct nvme_request *req, uint32_t page_size, uint64_t *list,
			 const uint64_t *list_bus, uint32_t list_pages)
{
	struct prp_ctx c = {.page_size = page_size,
			    .list = list,
			    .list_bus = list_bus,
			    .list_pages = list_pages};
	struct prp_merge m = {.c = &c};
	int rc;

	/* No data: DPTR is the command's own (Create I/O SQ/CQ put the queue there). */
	if (req->payload_size == 0)
		return 0;
	ust_nvme_cmd_set_psdt(&req->cmd, UST_NVME_PSDT_PRP);
	req->cmd.dptr.prp.prp1 = 0;
	req->cmd.dptr.prp.prp2 = 0;
	rc = for_each_chunk(req, prp_merge_chunk, &m);
	if (rc != 0)
		return rc;
	req->cmd.dptr.prp.prp1 = c.prp1;
	if (c.nentries == 2)
		req->cmd.dptr.prp.prp2 = list[0];
	else if (c.nentries > 2)
		req->cmd.dptr.prp.prp2 = list_bus[0];
	return 0;
}

struct sgl_ctx {
	struct ust_nvme_sgl_descriptor *list;
	uint32_t max_desc;
	uint32_t ndesc;
	bool dword_aligned;
};

static int sgl_chunk(void *arg, uint64_t bus, uint32_t len)
{
	struct sgl_ctx *c = arg;
	struct ust_nvme_sgl_descriptor *prev = c->ndesc ? &c->list[c->ndesc - 1] : NULL;

	if (c->dword_aligned && ((bus & 3) || (len & 3)))
		return -EINVAL;
	if (prev != NULL && prev->address + prev->length == bus &&
	    (uint64_t)prev->length + len <= UINT32_MAX) {
		prev->length += len;
		return 0;
	}
	if (c->ndesc == c->max_desc)
		return -EINVAL;
	memset(&c->list[c->ndesc], 0, sizeof(c->list[0]));
	c->list[c->ndesc].address = bus;
	c->list[c->ndesc].length = len;
	c->list[c->ndesc].sgl_identifier =
		UST_NVME_SGL_ID(UST_NVME_SGL_TYPE_DATA_BLOCK, UST_NVME_SGL_SUBTYPE_ADDRESS);
	c->ndesc++;
	return 0;
}

int nvme_pcie_build_sgl(struct nvme_request *req, struct ust_nvme_sgl_descriptor *list,
			uint64_t list_bus, uint32_t max_desc, bool dword_aligned)
{
	struct sgl_ctx c = {.list = list, .max_desc = max_desc, .dword_aligned = dword_aligned};
	struct ust_nvme_sgl_descriptor *sgl1 = &req->cmd.dptr.sgl1;
	int rc;

	if (req->payload_size == 0)
		return 0;
	/* PSDT 01b: SGLs for data, MPTR (unused) a plain address. */
	ust_nvme_cmd_set_psdt(&req->cmd, UST_NVME_PSDT_SGL_MPTR_CONTIG);
	memset(sgl1, 0, sizeof(*sgl1));
	rc = for_each_chunk(req, sgl_chunk, &c);
	if (rc != 0)
		return rc;
	if (c.ndesc == 1) {
		*sgl1 = list[0];
		return 0;
	}
	/* Several: SGL1 is a Last Segment descriptor pointing at them all. */
	sgl1->address = list_bus;
	sgl1->length = c.ndesc * (uint32_t)sizeof(*list);
	sgl1->sgl_identifier =
		UST_NVME_SGL_ID(UST_NVME_SGL_TYPE_LAST_SEGMENT, UST_NVME_SGL_SUBTYPE_ADDRESS);
	return 0;
}
